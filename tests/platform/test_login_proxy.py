"""The log-in throttle against a hostile client: forged forwarded headers, parallel guessing.

X-Forwarded-For and X-Forwarded-Proto are believed only from TRUSTED_PROXIES; the count is
claimed in the database before each password check, so parallel attempts cannot overshoot it.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from studyplatform.env import ConfigError, env_networks
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
PROXY = "172.30.57.10"


def _login(client: Any, username: str, password: str, **headers: str) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password}, **headers)


@pytest.mark.django_db
def test_forged_forwarded_for_from_a_direct_client_does_not_reset_the_count(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    settings.TRUSTED_PROXIES = [ipaddress.ip_network(PROXY)]
    UserFactory(username="alice")
    statuses = [
        _login(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(12)
    ]
    assert statuses == [200] * 5 + [429] * 7
    right = _login(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_client_is_the_hop_the_proxy_added(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = [ipaddress.ip_network(PROXY)]
    UserFactory(username="bob")
    # The client rotates what it writes itself; the proxy appends the address it saw.
    for n in range(2):
        forged = f"10.9.9.{n}, 203.0.113.7"
        assert _login(client, "bob", "wrong", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forged)
    refused = _login(
        client, "bob", PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="10.9.9.200, 203.0.113.7"
    )
    assert refused.status_code == 429
    # Another client behind the same proxy is not paused by the first one's guesses.
    other = _login(client, "bob", PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert other.status_code == 302


@pytest.mark.django_db
def test_forwarded_proto_counts_only_from_a_trusted_proxy(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = [ipaddress.ip_network(PROXY)]
    direct = client.get(reverse("login"), HTTP_X_FORWARDED_PROTO="https")
    assert direct.status_code == 301 and direct["Location"].startswith("https://")
    proxied = client.get(reverse("login"), HTTP_X_FORWARDED_PROTO="https", REMOTE_ADDR=PROXY)
    assert proxied.status_code == 200


def test_trusted_proxies_setting_refuses_what_is_not_an_address():
    assert env_networks("TRUSTED_PROXIES", [], environ={"TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"})
    with pytest.raises(ConfigError, match=r"TRUSTED_PROXIES has 'proxy\.local'"):
        env_networks("TRUSTED_PROXIES", [], environ={"TRUSTED_PROXIES": "proxy.local"})


@pytest.mark.django_db(transaction=True)
def test_thirty_parallel_wrong_passwords_check_at_most_the_limit(settings):
    """Each thread is a browser of its own (its client, its database connection)."""
    settings.LOGIN_FAILURE_LIMIT = 5
    UserFactory(username="carol")
    attempts = 30
    start = threading.Barrier(attempts)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        browser = Client(enforce_csrf_checks=True)
        page = browser.get(reverse("login"))
        # From this page's HTML: the test client's captured context is shared between threads.
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
        assert token is not None
        start.wait(timeout=60)
        try:
            response = browser.post(
                reverse("login"),
                {"username": "carol", "password": "wrong", "csrfmiddlewaretoken": token.group(1)},
            )
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == attempts
    # 200: the password was checked (and did not match); 429: refused before any check.
    assert statuses.count(200) <= 5
    assert statuses.count(200) + statuses.count(429) == attempts
    assert _login(Client(), "carol", PASSWORD).status_code == 429
