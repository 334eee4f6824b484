"""Shared fixtures: a fast password hasher, media in a temporary folder, headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import settings as hypothesis_settings

from tests.services import IN_CI, web_broker

# Property tests explore new examples on a developer's machine, and in CI run the same examples
# every time, so that a CI failure is a regression that reproduces, not a new random draw.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if IN_CI:
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher() -> Iterator[None]:
    """Hash test passwords with MD5 in every test, session fixtures and the live server included.

    The production hasher (PBKDF2, a million rounds) takes seconds per password on a busy CI
    machine, and the suite sets and checks hundreds of passwords; its cost is not what any test
    checks. Subprocesses (manage.py, Celery workers) still hash with the settings' hashers.
    """
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    """Every test writes files under its own folder, never into the developer's var/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _live_server_idle_before_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a live-server test, wait for the server's requests in flight before the flush.

    The browser's page is closed by then (it was opened after this fixture), but the live
    server's threads may still be answering what the page asked last (the viewer loads a series'
    slices and the next case's images in the background). PostgreSQL's TRUNCATE of the flush and
    such a request can deadlock, and the flush is the one that fails. Set up after the database
    fixtures (pytest-django's own autouse fixtures come first), so its wait runs before the flush.
    """
    yield
    if "live_server" not in request.fixturenames:
        return
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    # Quiet for half a second, not just once: a closing page still sends its last draft and
    # telemetry (keepalive), which can reach the server just after a first idle look.
    deadline = time.monotonic() + 10
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            (busy,) = cursor.fetchone()
        if busy:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 0.5:
            return
        time.sleep(0.05)


@pytest.fixture
def broker_down() -> Iterator[None]:
    """The web process's broker is a port nobody listens on (the broker is down)."""
    with web_broker("redis://127.0.0.1:1/0"):
        yield


@pytest.fixture
def roles(django_db_blocker: Any) -> None:
    """The role groups; transactional tests flush what the data migration created."""
    from studyplatform.accounts.roles import ensure_roles

    with django_db_blocker.unblock():
        ensure_roles()


def _chromium() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Drive Debian's Chromium: vendor browser downloads are not available (or wanted)."""
    executable = _chromium()
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }
