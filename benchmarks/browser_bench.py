"""What the browser benchmarks share: a prepared database, a gunicorn server, headless Chromium.

``ct_viewer.py`` and ``prefetch.py`` both serve their study from a production-settings gunicorn
(one worker process, four threads) and drive Debian's Chromium logged in as a reader.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_reading import PASSWORD, ROOT, Client, _environment, _manage

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


def chromium_options() -> dict[str, Any]:
    """Launch options for Debian's Chromium (``CHROMIUM_PATH`` overrides where it is)."""
    return {
        "executable_path": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        "args": CHROMIUM_ARGS,
    }


def arguments(
    description: str, *, port: int, var_dir: str, database: str, reuse: str
) -> argparse.ArgumentParser:
    """The options both benchmarks take; each adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--reuse", action="store_true", help=reuse)
    parser.add_argument("--var-dir", type=Path, default=Path(tempfile.gettempdir()) / var_dir)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}"
        ),
    )
    return parser


def prepared_environment(args: argparse.Namespace) -> dict[str, str]:
    """The server's environment, also set in this process (which builds the study), with the
    database created, migrated and the static files collected."""
    args.var_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(args.database_url, args.var_dir)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyplatform.settings"
    prepare_database(env, args.database_url)
    return env


def prepare_database(env: dict[str, str], database_url: str) -> None:
    """Create the benchmark's database if it is missing, migrate it, collect the static files."""
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", database_url.rsplit("/", 1)[1]],
        check=False,
        capture_output=True,
    )
    _manage(env, "migrate", "--noinput")
    _manage(env, "collectstatic", "--noinput")


@contextmanager
def gunicorn(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A production gunicorn on ``port``, answering ``/health/`` before this yields."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "studyplatform.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
         "--worker-class", "gthread", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        for _ in range(150):
            try:
                if Client(port).request("GET", "/health/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def open_reading_page(page: Any, base: str, username: str, path: str) -> None:
    """Log ``username`` in through the login page and open ``path`` until the viewer is ready."""
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}{path}")
    page.wait_for_selector('#viewer[data-ready="true"]')
