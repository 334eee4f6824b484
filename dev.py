#!/usr/bin/env python3
"""Set up and run the platform with nothing but Python 3.11+.

    python3 dev.py demo     # virtualenv, install, migrate, demo study, web server + worker
    python3 dev.py test     # virtualenv, install with test tools, run the whole test suite
    python3 dev.py check    # ruff, mypy, import contracts, migrations (CI runs it too)

Everything lands in ./.venv and ./var. With no DATABASE_URL / CELERY_BROKER_URL set, the demo
runs on SQLite and the embedded broker (no servers needed); set them to use PostgreSQL and
Redis or RabbitMQ instead. This file uses only the standard library on purpose: it runs before
anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=False)
    if completed.returncode != 0:
        sys.exit(f"dev.py: {' '.join(map(str, args[:4]))} ... failed ({completed.returncode})")


DEV_ENV = ROOT / "var" / "dev.env"


def _mark_development_checkout() -> None:
    """Let `python manage.py ...` run as the README prints it here: DEBUG on unless set.

    The settings read var/dev.env (studyplatform/env.py); the environment wins over it, and
    production images have no var/ beside the code.
    """
    if not DEV_ENV.exists():
        DEV_ENV.parent.mkdir(exist_ok=True)
        DEV_ENV.write_text(
            "# Written by dev.py: this checkout is for development (DEBUG on unless the\n"
            "# environment says otherwise). Delete it to run the code as production does.\n"
            "DEBUG=true\n"
        )


def ensure_environment(*, extras: str) -> None:
    """Create .venv and install the project, skipping work already done for this pyproject."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists
        sys.exit(f"dev.py: Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        _say(f"creating the virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extras}]" if extras else "."
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = VENV / f".installed-{extras or 'base'}"
    _mark_development_checkout()
    if stamp.exists() and stamp.read_text() == digest:
        return
    _say(f"installing the project and its pinned dependencies ({spec})")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", spec)
    stamp.write_text(digest)


def _project_env(**defaults: str) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in defaults.items():
        env.setdefault(key, value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def demo(arguments: argparse.Namespace) -> None:
    ensure_environment(extras="")
    env = _project_env(DEBUG="true")
    manage = (PYTHON, "manage.py")
    _say("migrating the database")
    _run(*manage, "migrate", "--verbosity", "0", env=env)
    address = f"{arguments.host}:{arguments.port}"
    _say("building the demo study")
    _run(*manage, "demo", "--ct", "--simulate-reads", "--base-url", f"http://{address}/", env=env)
    worker = subprocess.Popen(
        [str(PYTHON), "-m", "celery", "-A", "studyplatform", "worker", "-Q", "default,inference",
         "-c", "1", "-B", "-l", "WARNING", "-n", "demo@%h"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [str(PYTHON), "manage.py", "runserver", "--noreload", address],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    _say(f"the demo is at http://{address}/ (a Celery worker runs beside it); Ctrl-C stops both")
    try:
        while server.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (server, worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (server, worker):
            process.wait(timeout=30)
    if server.returncode not in (0, -signal.SIGTERM, None):
        sys.exit(f"dev.py: the web server stopped with {server.returncode}")


def test(arguments: argparse.Namespace) -> None:
    ensure_environment(extras="dev")
    env = _project_env(DEBUG="true", DJANGO_ALLOW_ASYNC_UNSAFE="true")
    completed = subprocess.run([str(PYTHON), "-m", "pytest", *arguments.pytest_args], cwd=ROOT,
                               env=env, check=False)  # fmt: skip
    sys.exit(completed.returncode)


def check(arguments: argparse.Namespace) -> None:
    """The static checks CI runs before the tests: lint, format, types, layers, migrations."""
    ensure_environment(extras="dev")
    env = _project_env(DEBUG="true")
    bin_dir = VENV / "bin"
    steps: list[tuple[str, tuple[str | Path, ...]]] = [
        ("ruff check", (bin_dir / "ruff", "check", ".")),
        ("ruff format --check", (bin_dir / "ruff", "format", "--check", ".")),
        ("mypy --strict", (bin_dir / "mypy", ".")),
        ("import contracts", (bin_dir / "lint-imports",)),
        ("migrations are current", (PYTHON, "manage.py", "makemigrations", "--check", "--dry-run")),
    ]
    for title, command in steps:
        _say(title)
        _run(*command, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="set up and run the demo study")
    demo_parser.add_argument("--host", default="127.0.0.1")
    demo_parser.add_argument("--port", type=int, default=8000)
    demo_parser.set_defaults(run=demo)
    check_parser = commands.add_parser(
        "check", help="lint, type-check, import and migration checks"
    )
    check_parser.set_defaults(run=check)
    test_parser = commands.add_parser(
        "test", help="set up and run the test suite (other options go to pytest)"
    )
    test_parser.set_defaults(run=test)
    # Everything after `test` that dev.py does not know goes to pytest (`test -q -k name`).
    arguments, extra = parser.parse_known_args()
    if extra and arguments.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    arguments.pytest_args = extra
    arguments.run(arguments)


if __name__ == "__main__":
    main()
