"""The image's health check passes against gunicorn run with the documented production settings.

Docker cannot run here, so the test does what the container does: gunicorn with the settings of
docker/.env.example (DEBUG off, ALLOWED_HOSTS the public name, HTTPS redirect on, behind the
proxy), then the Dockerfile's HEALTHCHECK command, unchanged but for the port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def _documented_environment(tmp_path: Path) -> dict[str, str]:
    example = (ROOT / "docker" / ".env.example").read_text()
    env = dict(re.findall(r"^([A-Z_]+)=(.*)$", example, flags=re.MULTILINE))
    env = {name: value for name, value in env.items() if value}
    # What the container has that the example leaves to the operator, or puts on other hosts.
    env.update(
        SECRET_KEY="z" * 64,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        VAR_DIR=str(tmp_path),
        MEDIA_ROOT=str(tmp_path / "media"),
        MODEL_ROOT=str(tmp_path / "models"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthcheck_command(port: int) -> str:
    match = re.search(r"^HEALTHCHECK .*?CMD (.+)$", DOCKERFILE, flags=re.MULTILINE | re.DOTALL)
    assert match, "the Dockerfile has no HEALTHCHECK"
    command = match.group(1).splitlines()[0]
    assert "127.0.0.1:8000" in command
    return command.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "python ", f"{sys.executable} ", 1
    )


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    env = _documented_environment(tmp_path)
    port = _free_port()
    gunicorn_bin = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn_bin), "studyplatform.wsgi:application", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None:
                output = server.stdout.read().decode() if server.stdout else ""
                pytest.fail(f"gunicorn exited: {output}")
            time.sleep(0.2)
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dockerfile_health_check_passes_with_the_documented_settings(gunicorn):
    port, env = gunicorn
    # The command is the Dockerfile's own shell form, as Docker runs it.
    result = subprocess.run(  # noqa: S602
        _healthcheck_command(port), shell=True, cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_health_skips_host_and_https_checks_for_loopback_peers_only(client, settings):
    settings.ALLOWED_HOSTS = ["reader.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    local = client.get("/health/", HTTP_HOST="127.0.0.1:8000", REMOTE_ADDR="127.0.0.1")
    assert local.status_code == 200 and local.json()["status"] == "ok"
    remote = client.get("/health/", HTTP_HOST="evil.example", REMOTE_ADDR="10.0.0.9")
    assert remote.status_code == 400
    other_page = client.get("/login/", HTTP_HOST="evil.example", REMOTE_ADDR="127.0.0.1")
    assert other_page.status_code == 400
