"""Single sign-on against a real (local) OpenID provider, through the pages a browser uses.

Each sign-in goes: the platform's authenticate URL -> the provider's authorize endpoint (which
approves the configured user) -> the platform's callback, which exchanges the code over HTTP
with the provider, checks the ID token and maps the email to an account.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import NoReverseMatch, reverse

from studyplatform.accounts import totp
from studyplatform.accounts.roles import COORDINATOR, READER
from studyplatform.audit.models import Action, AuditEvent
from tests.accounts.oidc_provider import Provider, RunningProvider, sso_enabled
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def running() -> Iterator[RunningProvider]:
    server = RunningProvider()
    yield server
    server.stop()


@pytest.fixture
def provider(running: RunningProvider) -> Iterator[Provider]:
    running.provider.reset(email="ada@hospital.example", email_verified=True)
    with sso_enabled(running.provider):
        yield running.provider


@pytest.fixture
def reader(roles):
    user = UserFactory(username="ada", email="Ada@Hospital.example", password=None)
    user.groups.set([Group.objects.get(name=READER)])
    return user


def start(client: Client, next_url: str = "") -> str:
    """Follow the platform to the provider and back; the callback URL (path and query)."""
    query = f"?next={next_url}" if next_url else ""
    response = client.get(reverse("oidc_authentication_init") + query)
    assert response.status_code == 302
    answer = requests.get(response["Location"], allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == reverse("oidc_authentication_callback")
    return f"{back.path}?{back.query}"


def sign_in(client: Client, next_url: str = ""):
    return client.get(start(client, next_url))


def test_login_page_offers_the_provider_when_configured(provider, client):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Example Hospital" in page
    assert reverse("oidc_authentication_init") in page


def test_verified_email_of_an_account_logs_in_and_is_audited(provider, reader, client):
    response = sign_in(client, next_url="/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert int(client.session["_auth_user_id"]) == reader.pk
    home = client.get(reverse("home"))
    assert home.status_code == 200
    event = AuditEvent.objects.get(action=Action.USER_LOGIN)
    assert event.actor_id == reader.pk
    assert (event.after or {})["method"] == "sso"


def test_unverified_email_is_refused(provider, reader, client):
    provider.claims["email_verified"] = False
    response = sign_in(client)
    assert response.status_code == 403
    assert "has not verified this email" in response.content.decode()
    assert "_auth_user_id" not in client.session
    refused = AuditEvent.objects.get(action=Action.USER_LOGIN_REFUSED)
    assert (refused.after or {})["reason"] == "unverified"


def test_unknown_email_is_refused_and_no_account_is_created(provider, reader, client):
    provider.claims["email"] = "stranger@elsewhere.example"
    users_before = type(reader).objects.count()
    response = sign_in(client)
    assert response.status_code == 403
    assert "No account on this platform has this email" in response.content.decode()
    assert type(reader).objects.count() == users_before
    assert "_auth_user_id" not in client.session


def test_deactivated_account_stays_refused(provider, reader, client):
    reader.is_active = False
    reader.save()
    response = sign_in(client)
    assert response.status_code == 403
    assert "deactivated" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_deactivating_an_account_ends_its_sso_session(provider, reader, client):
    assert sign_in(client).status_code == 302
    reader.is_active = False
    reader.save()
    assert client.get(reverse("home")).status_code == 302  # back to the log-in page


def test_tampered_id_token_signature_is_refused(provider, reader, client):
    provider.tamper_signature = True
    response = sign_in(client)
    assert response.status_code == 403
    assert "could not be verified" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert (AuditEvent.objects.get(action=Action.USER_LOGIN_REFUSED).after or {})[
        "reason"
    ] == "invalid"


def test_id_token_for_another_client_is_refused(provider, reader, client):
    provider.audience = "some-other-application"
    assert sign_in(client).status_code == 403
    assert "_auth_user_id" not in client.session


def test_id_token_with_another_nonce_is_refused(provider, reader, client):
    provider.nonce_override = "a-nonce-this-browser-never-sent"
    assert sign_in(client).status_code == 403
    assert "_auth_user_id" not in client.session


def test_callback_with_a_state_this_browser_never_started_is_refused(provider, reader, client):
    callback = start(Client())  # another browser started this sign-in
    client.get(reverse("login"))
    assert client.get(callback).status_code == 403
    other = start(client)  # this browser has a sign-in of its own under way
    forged = other.split("state=")[0] + "state=forged-state"
    assert client.get(forged).status_code == 403
    assert "_auth_user_id" not in client.session


def test_a_callback_replayed_is_refused(provider, reader, client):
    callback = start(client)
    assert client.get(callback).status_code == 302
    client.logout()
    assert client.get(callback).status_code == 403
    assert "_auth_user_id" not in client.session


def test_refused_sign_ins_are_throttled_like_passwords(provider, reader, client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    provider.claims["email_verified"] = False
    assert sign_in(client).status_code == 403
    assert sign_in(client).status_code == 403
    throttled = sign_in(client)
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    provider.claims["email_verified"] = True  # even now right, the pause holds
    assert sign_in(client).status_code == 429


def test_staff_sign_in_asks_for_the_one_time_password(provider, roles, client, settings):
    settings.REQUIRE_STAFF_TOTP = True
    staff = UserFactory(username="grace", email="ada@hospital.example", password=None)
    staff.groups.set([Group.objects.get(name=COORDINATOR)])
    response = sign_in(client, next_url="/dashboard/")
    assert response.status_code == 302
    page = client.get("/dashboard/")
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("totp_enrol"))


def test_provider_asserted_mfa_counts_as_the_one_time_password(provider, roles, client, settings):
    settings.REQUIRE_STAFF_TOTP = True
    provider.claims["amr"] = ["pwd", "otp", "mfa"]
    staff = UserFactory(username="grace", email="ada@hospital.example", password=None)
    staff.groups.set([Group.objects.get(name=COORDINATOR)])
    assert sign_in(client).status_code == 302
    assert client.session[totp.SESSION_KEY] == staff.pk
    assert client.get("/dashboard/").status_code == 200


def test_without_configuration_the_sso_routes_do_not_exist(client):
    with pytest.raises(NoReverseMatch):
        reverse("oidc_authentication_init")
    assert client.get("/sso/authenticate/").status_code == 404
    assert client.get("/sso/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in client.get(reverse("login")).content.decode()
