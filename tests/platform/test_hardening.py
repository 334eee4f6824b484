"""Hardening: login throttling, sessions, production cookies and HSTS, uploads, media serving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from django.urls import reverse

from studyplatform.accounts.models import LoginAttempts
from studyplatform.audit.files import check_upload, serve_protected_file
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


def _login(client, username, password, *, path="login"):
    return client.post(reverse(path), {"username": username, "password": password})


@pytest.mark.django_db
def test_login_pauses_after_the_failure_limit_with_429_and_a_clear_message(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="alice")
    for _ in range(3):
        assert _login(client, "alice", "wrong").status_code == 200
    refused = _login(client, "alice", PASSWORD)  # even the right password now waits
    assert refused.status_code == 429
    assert "Too many failed log-in attempts" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_admin_login_is_throttled_too(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    UserFactory(username="admin1", is_staff=True)
    for _ in range(2):
        _login(client, "admin1", "wrong", path="admin:login")
    assert _login(client, "admin1", PASSWORD, path="admin:login").status_code == 429


@pytest.mark.django_db
def test_throttle_counts_per_username_and_address(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    UserFactory(username="bob")
    UserFactory(username="carol")
    for _ in range(2):
        _login(client, "bob", "wrong")
    assert _login(client, "carol", PASSWORD).status_code == 302  # another user is not paused
    other_address = client.post(
        reverse("login"), {"username": "bob", "password": PASSWORD}, REMOTE_ADDR="10.1.2.3"
    )
    assert other_address.status_code == 302


@pytest.mark.django_db
def test_throttle_window_passes_and_success_clears_failures(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    UserFactory(username="dave")
    _login(client, "dave", "wrong")
    assert _login(client, "dave", PASSWORD).status_code == 302
    assert not LoginAttempts.objects.filter(username="dave").exists()
    settings.LOGIN_FAILURE_WINDOW = 1
    LoginAttempts.objects.create(
        username="dave", ip="127.0.0.1", window_start="2000-01-01T00:00:00Z", attempts=2
    )
    client.logout()
    assert _login(client, "dave", PASSWORD).status_code == 302  # old failures do not count


def test_sessions_expire_when_idle_and_at_browser_close(settings):
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert settings.SESSION_COOKIE_AGE <= 8 * 3600
    assert settings.SESSION_COOKIE_HTTPONLY is True


def _production_settings(tmp_path: Path, *names: str) -> dict[str, Any]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "studyplatform.settings",
        "DEBUG": "false",
        "SECRET_KEY": "y" * 64,
        "ALLOWED_HOSTS": "reader.example.org",
        "VAR_DIR": str(tmp_path),
    }
    code = (
        "import django, json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout))


def test_production_cookies_are_secure_and_hsts_is_on(tmp_path):
    values = _production_settings(
        tmp_path,
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "X_FRAME_OPTIONS",
    )
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"


def test_upload_over_the_limit_or_of_another_type_is_refused(settings):
    settings.MAX_UPLOAD_SIZE = 10
    with pytest.raises(ValidationError, match=r"big\.csv is 11 bytes; the limit is 10 bytes"):
        check_upload(SimpleUploadedFile("big.csv", b"x" * 11), allowed_suffixes={".csv"})
    with pytest.raises(ValidationError, match=r"evil\.html is not an accepted file type"):
        check_upload(SimpleUploadedFile("evil.html", b"<script>"), allowed_suffixes={".csv"})
    check_upload(SimpleUploadedFile("ok.CSV", b"a,b"), allowed_suffixes={".csv"})


def test_protected_file_is_served_private_and_not_cacheable(settings):
    media = Path(settings.MEDIA_ROOT)
    (media / "studies").mkdir(parents=True)
    (media / "studies" / "a.png").write_bytes(b"png")
    response = serve_protected_file("studies/a.png")
    assert b"".join(response.streaming_content) == b"png"
    assert response["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    "name", ["../secret.txt", "/etc/passwd", "studies/../../secret.txt", "", "studies/link"]
)
def test_protected_file_refuses_paths_outside_media_root(settings, name):
    media = Path(settings.MEDIA_ROOT)
    (media / "studies").mkdir(parents=True)
    (media.parent / "secret.txt").write_text("secret")
    (media / "studies" / "link").symlink_to(media.parent / "secret.txt")
    with pytest.raises(Http404):
        serve_protected_file(name)


@pytest.mark.django_db
def test_pages_for_a_logged_in_user_are_never_cached(client):
    # From another host than the container itself (whose health checks skip the middleware).
    remote = {"REMOTE_ADDR": "10.0.0.1"}
    assert "no-store" not in client.get(reverse("health"), **remote).get("Cache-Control", "")
    client.force_login(UserFactory(username="eve"))
    response = client.get(reverse("health"), **remote)
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
