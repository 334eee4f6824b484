"""Real services for tests: reachability checks, and Celery worker processes.

Off CI a missing server skips the test that needs it; in CI (CI=true) it fails the test, so a
broken service can never turn into a silently green run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    default_ports = {"redis": 6379, "rediss": 6380, "amqp": 5672, "pyamqp": 5672, "postgres": 5432}
    port = parts.port or default_ports.get(parts.scheme, 0)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def require(url: str, what: str) -> None:
    if reachable(url):
        return
    message = f"{what} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}; in CI every service must be up (.ci/run starts them)")
    pytest.skip(message)


def redis_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    return configured if configured.startswith("redis") else "redis://127.0.0.1:6379/15"


def rabbitmq_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    return configured if configured.startswith("amqp") else "amqp://guest:guest@127.0.0.1:5672//"


def current_database_url() -> str:
    """The URL of the database this test process uses now (the test database)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings["USER"] or "", safe="")
    password = quote(settings["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings["HOST"] or "127.0.0.1"
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings['NAME'])}"


def service_env(var_dir: Path, **overrides: str | None) -> dict[str, str]:
    """An environment for a project subprocess: our settings, a private VAR_DIR, overrides.

    An override of None removes the variable (to exercise the server-less defaults).
    """
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DEBUG": "true", "VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout


@contextmanager
def celery_worker(
    env: Mapping[str, str],
    *,
    queues: str = "default,inference",
    log: Path,
    include: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process (prefork pool), stopped with a warm shutdown at the end.

    ``include`` names extra task modules to import (test-only tasks, say).
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "studyplatform",
                "worker",
                "-Q",
                queues,
                "-c",
                "1",
                "--pool",
                "prefork",
                "-l",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{os.getpid()}@%h",
                *([f"--include={','.join(include)}"] if include else []),
            ],
            cwd=ROOT,
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes], *, grace: float = 10) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def web_broker(url: str) -> Iterator[None]:
    """This process (the web app under test) publishes to ``url`` until the block ends."""
    from studyplatform.celery import app

    saved = app.conf.broker_url, app.conf.broker_write_url
    app.conf.broker_url = app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        app._pool = None
        app.amqp._producer_pool = None
