"""Stream the long reads CSV of 1,000,000 rows from a real server; time and server memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h8 \
        .venv/bin/python benchmarks/bench_export.py

Targets (issue 6): at most 30 s, server peak memory under 300 MB. The study (50 readers x 5000
cases x 2 arms x 2 finding types) is built with COPY on first use (benchmarks/bigstudy.py).
The server is gunicorn with one sync worker and production settings (DEBUG off); the client
reads the response in 64 KB pieces and counts the rows, while the worker's resident memory
is sampled every 50 ms (and its high-water mark read at the end).
"""

from __future__ import annotations

import http.client
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bigstudy import ROOT, SLUG, build, setup_django


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username="bench-coordinator")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


SECRET = "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105


def main() -> None:
    os.environ["SECRET_KEY"] = SECRET  # the session's hash must match the server's key
    setup_django()
    build()
    cookie = _session_cookie()
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "studyplatform.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        worker = int(children[0])
        peak = [_rss_mb(worker)]
        before = peak[0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(_rss_mb(worker))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        # The export is a form POST: the CSRF cookie and the same secret in the body.
        csrf = secrets.token_hex(16)  # 32 characters, as a CSRF secret
        conn.request(
            "POST",
            f"/dashboard/{SLUG}/export/",
            body=f"format=long&csrfmiddlewaretoken={csrf}",
            headers={
                "Cookie": f"{cookie}; csrftoken={csrf}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} {response.getheader('Location')}")
        n_bytes = n_lines = 0
        first_byte = None
        while chunk := response.read(65536):
            if first_byte is None:
                first_byte = time.perf_counter() - t0
            n_bytes += len(chunk)
            n_lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - t0
        done.set()
        sampler.join()
        hwm = _rss_mb(worker, "VmHWM")
        print(
            f"long export: {n_lines - 1:,} rows, {n_bytes / 1e6:.1f} MB in {elapsed:.1f} s "
            f"(first byte after {first_byte:.2f} s, {(n_lines - 1) / elapsed:,.0f} rows/s)"
        )
        print(
            f"server worker memory: {before:.0f} MB before, peak {max(peak):.0f} MB sampled, "
            f"high-water mark {hwm:.0f} MB"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
