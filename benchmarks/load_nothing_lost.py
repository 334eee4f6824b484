"""Nothing lost under load: concurrent readers submit reads with duplicates and dropped connections.

Builds an open crossover study in a PostgreSQL database (a new study with its own slug; nothing
else in the database is touched), starts a real gunicorn server on the loopback interface, and
lets ``--readers`` simulated readers work through their first session at the same time, each
read being: open the reading page (the server's start time), then submit with the page's
idempotency key. A seeded share of the submits is sent twice at the same moment on two
connections (the same key), and another share loses its connection: the client closes the socket
right after sending the request, or halfway through the body, and then retries with the same key,
as the reading page's JavaScript does. At the end the database must hold exactly one read per
acknowledged assignment: the script reports reads stored, duplicates, losses and the client-side
p50/p95 latency of the submits, and exits non-zero if anything was lost or stored twice.

Usage::

    .venv/bin/python benchmarks/load_nothing_lost.py --database-url postgres://.../DB
        [--readers 50] [--reads 5000] [--workers 4] [--duplicate-share 0.1]
        [--drop-share 0.1] [--max-seconds 900]

The database must be migrated (the script runs ``migrate``). Bounded: at most ``--reads`` reads
and ``--max-seconds`` seconds; every connection goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_CSRF = re.compile(rb'id="csrf" value="([^"]+)"')
_DATA = re.compile(rb'id="reading-data" type="application/json">(.*?)</script>', re.S)


# --- The study --------------------------------------------------------------------------------


def build_study(*, slug: str, n_readers: int, n_cases: int) -> dict[str, list[int]]:
    """Create an open crossover study; return each reader's session-1 assignments in order.

    Needs Django set up. Every reader reads every case once in session 1 (the crossover's first
    half), so the run's reads are ``n_readers x n_cases``.
    """
    import io

    import numpy as np
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from PIL import Image as PILImage

    from studyplatform.prereads.registry import register_demo_model
    from studyplatform.prereads.services import pin_model
    from studyplatform.reading.models import Assignment, Enrolment, Reader
    from studyplatform.reading.services import open_study, randomize_study
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

    study = Study.objects.create(slug=slug, title="Nothing lost under load", seed=11)
    Arm.objects.create(study=study, name="unassisted", label="Unassisted", order=1)
    Arm.objects.create(study=study, name="assisted", label="AI-assisted", shows_ai=True, order=2)
    findings = [
        FindingType.objects.create(study=study, code=code, name=code.title(), order=i)
        for i, code in enumerate(("nodule", "effusion"), start=1)
    ]
    sites = [
        Site.objects.get_or_create(code=f"{slug}-{i}", defaults={"name": f"Site {i}"})[0]
        for i in range(2)
    ]
    png = io.BytesIO()
    PILImage.fromarray((np.arange(32 * 40).reshape(32, 40) % 4096).astype(np.uint16)).save(
        png, format="PNG"
    )
    for number in range(n_cases):
        case = Case.objects.create(
            study=study, case_id=f"L{number:04d}", site=sites[number % 2], modality="DX"
        )
        image = Image(
            case=case,
            series=Series.objects.first_of(case),
            position=1,
            sha256="0" * 64,
            rows=32,
            columns=40,
            bits_stored=12,
            window_center=2048,
            window_width=4096,
        )
        image.original.save(f"{case.case_id}.png", ContentFile(png.getvalue()), save=False)
        image.display.save(f"{case.case_id}.png", ContentFile(png.getvalue()), save=False)
        image.save()
        for i, finding in enumerate(findings):
            Truth.objects.create(
                case=case, finding_type=finding, present=(number + i) % 3 == 0, source="import"
            )
    for i in range(1, n_readers + 1):
        user = User.objects.create(username=f"{slug}-reader{i}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        reader = Reader.objects.create(user=user, code=f"{slug}-R{i:02d}")
        Enrolment.objects.create(study=study, reader=reader)
    # The assisted arm needs a pinned model to open; the shipped demo model (registered once).
    pin_model(study=study, model=register_demo_model())
    randomize_study(study=study)
    open_study(study=study)
    plan: dict[str, list[int]] = {}
    for assignment in (
        Assignment.objects.filter(session__study=study, session__number=1)
        .select_related("reader__user")
        .order_by("reader_id", "position", "step")
    ):
        plan.setdefault(assignment.reader.user.username, []).append(assignment.pk)
    return plan


def session_cookies(usernames: list[str]) -> dict[str, str]:
    """A logged-in session cookie per user (stored in the database the server reads)."""
    from django.contrib.auth.models import User
    from django.test import Client

    cookies = {}
    for user in User.objects.filter(username__in=usernames):
        client = Client()
        client.force_login(user)
        cookies[user.username] = client.cookies["sessionid"].value
    return cookies


@dataclass(frozen=True)
class Tally:
    reads: int  # reads stored for the planned assignments (originals, not corrections)
    duplicates: int  # reads beyond the first of an assignment
    losses: int  # acknowledged assignments without a stored read
    unacknowledged: int  # planned assignments whose submit never got a 200/201


def tally(assignment_ids: list[int], acknowledged: set[int]) -> Tally:
    from django.db.models import Count, Q

    from studyplatform.reading.models import Assignment

    counts = dict(
        Assignment.objects.filter(pk__in=assignment_ids)
        .annotate(n=Count("reads", filter=Q(reads__supersedes__isnull=True)))
        .values_list("pk", "n")
    )
    return Tally(
        reads=sum(counts.values()),
        duplicates=sum(max(0, n - 1) for n in counts.values()),
        losses=sum(1 for pk in acknowledged if counts.get(pk, 0) == 0),
        unacknowledged=sum(1 for pk in assignment_ids if pk not in acknowledged),
    )


# --- The server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(database_url: str, var_dir: Path, *, debug: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "DEBUG": "true" if debug else "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": database_url,
            "VAR_DIR": str(var_dir),
            "LOG_LEVEL": "ERROR",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
    )
    if not debug:
        # The sessions this process creates must verify in the server: one key for both.
        env["SECRET_KEY"] = os.environ.get("SECRET_KEY") or "load-test-" + "k" * 50
    return env


def set_up_django(database_url: str, *, prefix: str) -> tuple[dict[str, str], Path]:
    """Production settings on ``database_url`` with a fresh var folder: migrate, collect the
    static files, and set Django up in this process too (to build the study and count reads).
    Returns the server's environment and the var folder."""
    var_dir = Path(tempfile.mkdtemp(prefix=prefix))
    env = server_environment(database_url, var_dir, debug=False)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyplatform.settings"
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    import django

    django.setup()
    return env, var_dir


@contextmanager
def gunicorn(env: Mapping[str, str], *, port: int, workers: int, log: Path) -> Iterator[None]:
    """A gunicorn server on 127.0.0.1:port, up (answering /health/) when the block starts."""
    with log.open("ab") as sink:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "studyplatform.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if HttpClient(port).request("GET", "/health/").status == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# --- The simulated reader -------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    ms: float


class HttpClient:
    """One reader's browser: its cookies, one fresh connection per request."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None) -> None:
        self.port = port
        self.cookies = dict(cookies or {})
        self.lock = threading.Lock()

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Host": "127.0.0.1", **(extra or {})}
        with self.lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=self._headers(headers))
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        elapsed = (time.perf_counter() - started) * 1000
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            with self.lock:
                for key, morsel in cookie.items():
                    self.cookies[key] = morsel.value
        return Answer(response.status, dict(response.headers.items()), data, elapsed)

    def drop(self, path: str, body: bytes, headers: Mapping[str, str], *, halfway: bool) -> None:
        """Send a POST and close the socket without reading the answer (or mid-body)."""
        all_headers = self._headers(headers)
        all_headers["Content-Length"] = str(len(body))
        head = f"POST {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()
        )
        payload = (head + "Connection: close\r\n\r\n").encode("latin-1")
        payload += body[: len(body) // 2] if halfway else body
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(payload)
            # SO_LINGER 0: close with a reset, as a browser tab killed mid-request does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@dataclass
class OpenedCase:
    submit_url: str
    body: bytes
    headers: dict[str, str]


def open_case(client: HttpClient, assignment_id: int) -> OpenedCase:
    """GET the reading page (it opens the case) and prepare the submit the page would send."""
    page = client.request("GET", f"/assignments/{assignment_id}/")
    if page.status != 200:
        raise RuntimeError(f"opening assignment {assignment_id} answered {page.status}")
    csrf = _CSRF.search(page.body)
    data = _DATA.search(page.body)
    if csrf is None or data is None:
        raise RuntimeError(f"assignment {assignment_id}: the reading page lacks its data")
    info = json.loads(data.group(1))
    # A probability and the call it implies: the study refuses a call that contradicts it.
    probability = 30 + assignment_id % 41
    findings = {
        f["code"]: {"present": probability >= 50, "confidence": probability, "marks": []}
        for f in info["findings"]
    }
    body = json.dumps(
        {"idempotency_key": info["idempotencyKey"], "findings": findings, "free_text": ""}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-CSRFToken": csrf.group(1).decode(),
        "Referer": f"http://127.0.0.1:{client.port}/assignments/{assignment_id}/",
    }
    return OpenedCase(info["submitUrl"], body, headers)


@dataclass
class RunStats:
    submit_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    acknowledged: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.submit_ms.append(answer.ms)
            self.statuses[answer.status] += 1


def submit_until_stored(
    client: HttpClient,
    case: OpenedCase,
    stats: RunStats,
    *,
    deadline: float,
    first_attempt_ok: bool = True,
) -> Answer | None:
    """Submit with the same key until the server acknowledges it (200/201), as the page does."""
    attempt = 0
    while time.monotonic() < deadline:
        try:
            answer = client.request("POST", case.submit_url, case.body, case.headers)
        except OSError:
            pass  # the connection broke: try again, as the page does
        else:
            stats.add(answer)
            if answer.status in (200, 201):
                return answer
            if answer.status < 500 and answer.status != 409:
                with stats.lock:
                    stats.errors.append(f"{case.submit_url}: {answer.status} {answer.body[:200]!r}")
                return None
        attempt += 1
        with stats.lock:
            stats.retries += 1
        time.sleep(min(2.0, 0.05 * 2**attempt))
    return None


def _send_twin(
    client: HttpClient,
    case: OpenedCase,
    stats: RunStats,
    deadline: float,
    pair: threading.Barrier,
    answers: list[Answer | None],
    slot: int,
) -> None:
    pair.wait()  # both copies leave together: the same key on two connections at once
    answers[slot] = submit_until_stored(client, case, stats, deadline=deadline)


def read_cases(
    client: HttpClient,
    assignment_ids: list[int],
    stats: RunStats,
    *,
    rng: random.Random,
    duplicate_share: float,
    drop_share: float,
    deadline: float,
    start: threading.Barrier,
) -> None:
    start.wait()
    for assignment_id in assignment_ids:
        if time.monotonic() > deadline:
            return
        try:
            case = open_case(client, assignment_id)
        except (OSError, RuntimeError) as error:
            with stats.lock:
                stats.errors.append(str(error))
            return
        roll = rng.random()
        if roll < duplicate_share:
            mode = "duplicate"
            answers: list[Answer | None] = [None, None]
            pair = threading.Barrier(2)

            twins = [
                threading.Thread(
                    target=_send_twin, args=(client, case, stats, deadline, pair, answers, slot)
                )
                for slot in (0, 1)
            ]
            for twin in twins:
                twin.start()
            for twin in twins:
                twin.join()
            stored = [a for a in answers if a is not None]
            created = sum(1 for a in stored if a.status == 201)
            if created > 1:
                with stats.lock:
                    stats.errors.append(f"assignment {assignment_id}: two submits both created")
            ok = len(stored) == 2
        else:
            if roll < duplicate_share + drop_share:
                halfway = rng.random() < 0.5
                mode = "dropped mid-body" if halfway else "dropped after sending"
                with suppress(OSError):
                    client.drop(case.submit_url, case.body, case.headers, halfway=halfway)
            else:
                mode = "normal"
            ok = submit_until_stored(client, case, stats, deadline=deadline) is not None
        with stats.lock:
            stats.modes[mode] += 1
            if ok:
                stats.acknowledged.add(assignment_id)
        if not ok:
            return  # the next case stays locked until this one is stored


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_load(
    *,
    port: int,
    plan: Mapping[str, list[int]],
    cookies: Mapping[str, str],
    duplicate_share: float,
    drop_share: float,
    max_seconds: float,
    seed: int = 20261128,
) -> tuple[RunStats, float]:
    """Every reader of ``plan`` works through its cases concurrently; returns stats and wall s."""
    stats = RunStats()
    deadline = time.monotonic() + max_seconds
    barrier = threading.Barrier(len(plan))
    threads = [
        threading.Thread(
            target=read_cases,
            args=(HttpClient(port, {"sessionid": cookies[username]}), ids, stats),
            kwargs={
                "rng": random.Random(f"{seed}-{username}"),
                "duplicate_share": duplicate_share,
                "drop_share": drop_share,
                "deadline": deadline,
                "start": barrier,
            },
            daemon=True,
        )
        for username, ids in plan.items()
    ]
    wall = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + 30))
    return stats, time.perf_counter() - wall


def report(stats: RunStats, counts: Tally, wall: float, *, readers: int, planned: int) -> str:
    lines = [
        f"{readers} concurrent readers, {planned} reads planned, {wall:.1f} s wall "
        f"({len(stats.acknowledged) / max(wall, 1e-9):.1f} acknowledged reads/s)",
        "submits by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.modes.items())),
        "submit answers: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
        + f"; retries {stats.retries}",
        f"reads stored {counts.reads}, duplicates {counts.duplicates}, losses {counts.losses}, "
        f"not acknowledged {counts.unacknowledged}",
        "submit latency (client, every request): "
        f"p50 {percentile(stats.submit_ms, 50):.0f} ms, "
        f"p95 {percentile(stats.submit_ms, 95):.0f} ms, "
        f"max {max(stats.submit_ms, default=0):.0f} ms",
    ]
    if stats.errors:
        lines.append(f"errors ({len(stats.errors)}): " + "; ".join(stats.errors[:5]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL", ""))
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--reads", type=int, default=5000, help="total; split over the readers")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--duplicate-share", type=float, default=0.1)
    parser.add_argument("--drop-share", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("give a PostgreSQL --database-url (or LOAD_DATABASE_URL)")
    n_cases = max(1, args.reads // args.readers)

    env, var_dir = set_up_django(args.database_url, prefix="load-nothing-lost-")
    slug = f"load-{int(time.time())}"
    started = time.perf_counter()
    plan = build_study(slug=slug, n_readers=args.readers, n_cases=n_cases)
    cookies = session_cookies(list(plan))
    planned = sum(len(ids) for ids in plan.values())
    print(
        f"study {slug}: {args.readers} readers x {n_cases} cases built in "
        f"{time.perf_counter() - started:.1f} s; media in {var_dir}",
        flush=True,
    )
    port = free_port()
    with gunicorn(env, port=port, workers=args.workers, log=var_dir / "gunicorn.log"):
        stats, wall = run_load(
            port=port,
            plan=plan,
            cookies=cookies,
            duplicate_share=args.duplicate_share,
            drop_share=args.drop_share,
            max_seconds=args.max_seconds,
        )
    counts = tally([pk for ids in plan.values() for pk in ids], stats.acknowledged)
    print(report(stats, counts, wall, readers=args.readers, planned=planned))
    failed = counts.duplicates or counts.losses or counts.unacknowledged or stats.errors
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
