"""Load test of the reading pages: 20 concurrent readers open, save drafts and submit reads.

Builds a crossover study on PostgreSQL (by default the database ``h7`` on 127.0.0.1; it is
flushed first), starts a real gunicorn server in production settings (DEBUG off, collected static
files, the database's persistent connections), logs the readers in through the login page, then
lets every reader work through their session concurrently: ``continue`` (the redirect to the next
case), open the reading page, fetch the image's pixels, save a draft, submit. It reports p50, p95
and max per endpoint, both as the client saw it and as the server logged it (gunicorn's request
time, ``%(D)s``), and checks that every submit stored exactly one read.

Usage::

    .venv/bin/python benchmarks/bench_reading.py [--readers 20] [--cases 24] [--workers 4]
        [--think 0] [--database-url postgres://postgres@127.0.0.1:5432/h7]

Target (issue 4): opening a case and submitting a read each at most 100 ms at the 95th
percentile on the server with 20 concurrent readers.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-reader-password"  # noqa: S105 - throwaway accounts of a flushed database
ENDPOINTS = ("continue", "open", "pixels", "draft", "submit")


def _environment(database_url: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": database_url,
            "VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "OPENBLAS_NUM_THREADS": "1",
        }
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def build_study(n_readers: int, n_cases: int) -> dict[str, int]:
    """Flush the database and build a randomized, open crossover study; return session IDs."""
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.utils import timezone
    from PIL import Image as PILImage

    from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding
    from studyplatform.reading.models import Enrolment, Reader, ReadingSession
    from studyplatform.reading.services import open_study, randomize_study
    from studyplatform.studies import imaging, phantoms
    from studyplatform.studies.models import (
        Arm,
        Case,
        FindingType,
        Image,
        Series,
        Site,
        Study,
        Truth,
    )

    call_command("flush", "--noinput", verbosity=0)
    study = Study.objects.create(slug="bench", title="Load test", seed=7, washout_days=28)
    Arm.objects.create(study=study, name="unassisted", label="Unassisted", order=1)
    Arm.objects.create(study=study, name="assisted", label="AI-assisted", shows_ai=True, order=2)
    findings = [
        FindingType.objects.create(study=study, code=code, name=code.title(), order=i)
        for i, code in enumerate(("nodule", "pneumothorax", "effusion"), start=1)
    ]
    sites = [Site.objects.create(code=f"site-{i}", name=f"Site {i}") for i in range(3)]
    model = AIModel.objects.create(
        name="bench",
        version="1",
        format="torchscript",
        path="-",
        sha256="0" * 64,
        finding_codes=[f.code for f in findings],
    )
    heat = io.BytesIO()
    PILImage.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(heat, format="PNG")
    for number in range(n_cases):
        case = Case.objects.create(
            study=study, case_id=f"B{number:04d}", site=sites[number % 3], modality="DX"
        )
        present = frozenset({"nodule"} if number % 2 else set())
        pixels = phantoms.generate_phantom(seed=number, findings=present, size=512).pixels
        image = Image(
            case=case,
            series=Series.objects.first_of(case),
            position=1,
            sha256="0" * 64,
            rows=512,
            columns=512,
            bits_stored=12,
            window_center=2048,
            window_width=4096,
        )
        image.original.save(f"{case.case_id}.dcm", ContentFile(b"-"), save=False)
        image.display.save(
            f"{case.case_id}.png", ContentFile(imaging.to_display_png16(pixels)), save=False
        )
        image.save()
        for f in findings:
            Truth.objects.create(
                case=case, finding_type=f, present=f.code in present, source="synthetic"
            )
        preread = PreRead.objects.create(
            case=case, model=model, status="done", finished_at=timezone.now()
        )
        preread.heatmap.save(f"{case.case_id}.png", ContentFile(heat.getvalue()))
        for i, f in enumerate(findings):
            PreReadFinding.objects.create(
                preread=preread, finding_type=f, probability=0.2 * i + 0.1
            )
    password = make_password(PASSWORD)
    for i in range(1, n_readers + 1):
        user = User.objects.create(username=f"bench{i}", password=password)
        reader = Reader.objects.create(user=user, code=f"B{i:02d}")
        Enrolment.objects.create(study=study, reader=reader)
    randomize_study(study=study)
    open_study(study=study)
    return {
        s.reader.user.username: s.pk
        for s in ReadingSession.objects.filter(study=study, number=1).select_related("reader__user")
    }


class Client:
    """One reader's browser: cookies, CSRF token, a fresh connection per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes, float]:
        all_headers = {"Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return response.status, dict(response.headers.items()), data, elapsed

    def login(self, username: str) -> None:
        _, _, page, _ = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        form = urlencode(
            {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
        ).encode()
        status, _, _, _ = self.request(
            "POST",
            "/login/",
            form,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/login/",
            },
        )
        assert status == 302, f"log-in of {username} answered {status}"


def read_session(
    client: Client,
    session_id: int,
    times: dict[str, list[float]],
    think: float,
    start: threading.Barrier,
    errors: list[str],
) -> int:
    start.wait()
    # Readers do not move in step: a random start within one think time, and think times
    # drawn around the mean (seeded, so runs are comparable).
    rng = random.Random(session_id)
    if think:
        time.sleep(rng.uniform(0, think))
    reads = 0
    while True:
        status, headers, _, elapsed = client.request("GET", f"/sessions/{session_id}/continue/")
        times["continue"].append(elapsed)
        location = headers.get("Location", "")
        match = re.search(r"/assignments/(\d+)/", location)
        if status != 302 or not match:
            break
        pk = match.group(1)
        status, _, page, elapsed = client.request("GET", f"/assignments/{pk}/")
        times["open"].append(elapsed)
        if status != 200:
            errors.append(f"open {pk}: {status}")
            break
        csrf_match = re.search(rb'id="csrf" value="([^"]+)"', page)
        data_match = re.search(
            rb'id="reading-data" type="application/json">(.*?)</script>', page, re.S
        )
        if csrf_match is None or data_match is None:
            errors.append(f"open {pk}: not a reading page")
            break
        csrf = csrf_match.group(1).decode()
        data = json.loads(data_match.group(1))
        status, _, _, elapsed = client.request("GET", data["images"][0]["pixelsUrl"])
        times["pixels"].append(elapsed)
        findings = {
            f["code"]: {"present": False, "confidence": 30, "marks": []} for f in data["findings"]
        }
        body = {"idempotency_key": data["idempotencyKey"], "findings": findings, "free_text": ""}
        json_headers = {
            "Content-Type": "application/json",
            "X-CSRFToken": csrf,
            "Referer": f"http://127.0.0.1:{client.port}/assignments/{pk}/",
        }
        status, _, _, elapsed = client.request(
            "POST", data["draftUrl"], json.dumps(body).encode(), json_headers
        )
        times["draft"].append(elapsed)
        if think:
            time.sleep(rng.uniform(0.5 * think, 1.5 * think))
        status, _, answer, elapsed = client.request(
            "POST", data["submitUrl"], json.dumps(body).encode(), json_headers
        )
        times["submit"].append(elapsed)
        if status != 201:
            errors.append(f"submit {pk}: {status} {answer[:200]!r}")
            break
        reads += 1
    return reads


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def server_times(log: Path) -> dict[str, list[float]]:
    """Request times (ms) per endpoint from gunicorn's access log."""
    patterns = {
        "continue": re.compile(r"GET /sessions/\d+/continue/"),
        "open": re.compile(r"GET /assignments/\d+/ "),
        "pixels": re.compile(r"GET /assignments/\d+/images/"),
        "draft": re.compile(r"POST /assignments/\d+/draft/"),
        "submit": re.compile(r"POST /assignments/\d+/submit/"),
    }
    times: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        match = re.search(r'"(\w+ \S+ )HTTP/[\d.]+" \d+ (\d+)$', line)
        if not match:
            continue
        for name, pattern in patterns.items():
            if pattern.match(match.group(1)):
                times[name].append(int(match.group(2)) / 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=24, help="Cases (each reader reads all).")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="gunicorn workers (default: cores).",
    )
    parser.add_argument(
        "--think", type=float, default=0.0, help="Seconds between draft and submit."
    )
    parser.add_argument("--port", type=int, default=8717)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/h7"),
    )
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="bench-reading-"))
    env = _environment(args.database_url, var_dir)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyplatform.settings"
    print(f"database {args.database_url}, media in {var_dir}", flush=True)
    _manage(env, "migrate", "--noinput")
    _manage(env, "collectstatic", "--noinput")
    started = time.perf_counter()
    sessions = build_study(args.readers, args.cases)
    print(
        f"study built: {args.readers} readers x {args.cases} cases x 2 arms in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    log = var_dir / "access.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "studyplatform.wsgi:application",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--access-logfile",
            str(log),
            "--access-logformat",
            '"%(r)s" %(s)s %(D)s',
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                if Client(args.port).request("GET", "/health/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        clients = {}
        for username in sessions:
            clients[username] = Client(args.port)
            clients[username].login(username)
        log.write_text("")  # measure the reading only
        times: dict[str, list[float]] = defaultdict(list)
        errors: list[str] = []
        barrier = threading.Barrier(len(clients))
        results: list[int] = []
        threads = [
            threading.Thread(
                target=lambda u=username: results.append(
                    read_session(clients[u], sessions[u], times, args.think, barrier, errors)
                )
            )
            for username in clients
        ]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall
        time.sleep(0.5)
        server_side = server_times(log)
    finally:
        server.terminate()
        server.wait(timeout=30)

    from studyplatform.reading.models import Assignment, Read

    stored = Read.objects.filter(assignment__session__study__slug="bench").count()
    doubled = (
        Assignment.objects.filter(session__study__slug="bench", reads__isnull=False)
        .values("pk")
        .distinct()
        .count()
    )
    total = sum(results)
    print(
        f"\n{args.readers} concurrent readers, {args.workers} gunicorn workers, think "
        f"{args.think} s: {total} reads in {wall:.1f} s ({total / wall:.1f} reads/s)"
    )
    print(f"reads stored {stored}, assignments with a read {doubled}, errors {len(errors)}")
    for error in errors[:5]:
        print("  ", error)
    print(
        f"\n{'endpoint':<10} {'n':>5} {'client p50':>11} {'p95':>7} {'max':>7}   "
        f"{'server p50':>11} {'p95':>7} {'max':>7}  (ms)"
    )
    for name in ENDPOINTS:
        client_ms, server_ms = times.get(name, []), server_side.get(name, [])
        if not client_ms:
            continue
        row = (
            f"{name:<10} {len(client_ms):>5} {statistics.median(client_ms):>11.1f} "
            f"{percentile(client_ms, 95):>7.1f} {max(client_ms):>7.1f}   "
        )
        if server_ms:
            row += (
                f"{statistics.median(server_ms):>11.1f} {percentile(server_ms, 95):>7.1f} "
                f"{max(server_ms):>7.1f}"
            )
        print(row)
    if errors or stored != total:
        sys.exit(1)


if __name__ == "__main__":
    main()
