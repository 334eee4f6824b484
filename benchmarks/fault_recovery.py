"""Fault recovery: cases arrive, pre-reads run and readers read while the services fail.

Everything runs on throwaway services, never on shared ones: a PostgreSQL cluster made with
``initdb`` in a temporary folder on a free port (as the ``postgres`` user when run as root), a
``redis-server`` without persistence on a free port, a gunicorn web server in production settings
and a real Celery worker with the beat (``-B``) and a short sweep interval. Then:

- a hospital system sends ``--cases`` cases through the intake API (``POST
  /api/studies/STUDY/cases/`` with a site token), one every ``--interval`` seconds, resending a
  case whose answer was lost or was a 5xx (the API answers a resend of the same bytes with 200);
- ``--readers`` readers read their first session throughout, paced to last as long as the intake
  (open the reading page, submit with the page's idempotency key, retry as the page does);
- once a fifth of the cases are pre-read, the whole worker is killed (while a pre-read runs,
  when one is caught within 10 s) (SIGKILL to its process group,
  pool and beat included) and a new one started; halfway Redis is stopped (its queued messages
  are lost) and started again ``--outage`` seconds later; at three quarters PostgreSQL is
  restarted (``pg_ctl restart -m fast``: every connection is cut).

At the end every case sent must be stored once and pre-read exactly once (one done pre-read of
the model per case, with its findings; the attempts each took are counted), and every
acknowledged read stored once: the script prints cases in, pre-reads, reads lost and duplicates,
and exits non-zero on any shortfall.

Usage::

    .venv/bin/python benchmarks/fault_recovery.py [--cases 40] [--interval 1.0]
        [--readers 6] [--reads-per-reader 8] [--outage 5] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from load_nothing_lost import (  # noqa: E402
    HttpClient,
    RunStats,
    build_study,
    free_port,
    gunicorn,
    open_case,
    percentile,
    server_environment,
    session_cookies,
    submit_until_stored,
    tally,
)

T = TypeVar("T")


# --- Throwaway services ------------------------------------------------------------------------


def _wait_for_port(port: int, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.05)


class Redis:
    """A redis-server without persistence: stopping it loses every message it held."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Postgres:
    """A PostgreSQL cluster of its own (initdb) in ``folder``, listening on 127.0.0.1:port."""

    def __init__(self, port: int, folder: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        binaries = Path(found[-1]).parent if found else Path(shutil.which("pg_ctl") or "").parent
        if not (binaries / "initdb").exists():
            raise RuntimeError("initdb and pg_ctl not found (/usr/lib/postgresql/*/bin or PATH)")
        self.bin, self.port = binaries, port
        self.data, self.log = folder / "pgdata", folder / "postgres.log"
        # initdb refuses to run as root: the cluster belongs to the postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            folder.chmod(0o755)
            self.log.touch()
            shutil.chown(self.log, "postgres")
            self.data.mkdir()
            shutil.chown(self.data, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), action, "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")  # cuts every connection, as a server restart does

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast"],
            check=False, capture_output=True,
        )  # fmt: skip

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"


class Worker:
    """A Celery worker with the beat; ``kill`` sends SIGKILL to its whole process group."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.log = folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0

    def start(self) -> None:
        self.started += 1
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "studyplatform", "worker",
                 "-Q", "default,inference", "-c", "1", "--pool", "prefork", "-l", "INFO",
                 "--without-gossip", "--without-mingle", "-n", f"fault-{self.started}@%h",
                 "-B", "-s", str(self.folder / "beat-schedule")],
                cwd=ROOT, env=self.env, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # parent, pool and beat at once
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


# --- Database access that rides out a restart ---------------------------------------------------


def with_database(query: Callable[[], T], *, timeout: float = 60) -> T:
    """Run ``query``; on a broken connection (a restart), reconnect and try again."""
    from django.db import InterfaceError, OperationalError, connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            return query()
        except (OperationalError, InterfaceError):
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- The hospital system ------------------------------------------------------------------------


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    body = io.BytesIO()
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        body.write(head.encode())
        body.write(value.encode() + b"\r\n")
    for name, filename, data in files:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/dicom\r\n\r\n'.encode()
        )
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Intake:
    sent: int = 0  # cases acknowledged (201, or 200 for a resend)
    statuses: Counter[int] = field(default_factory=Counter)
    resends: int = 0
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def send_cases(
    port: int, *, slug: str, token: str, case_ids: list[str], image: bytes, interval: float,
    intake: Intake, deadline: float,
) -> None:  # fmt: skip
    client = HttpClient(port)
    path = f"/api/studies/{slug}/cases/"
    for case_id in case_ids:
        next_at = time.monotonic() + interval
        body, content_type = multipart(
            {"metadata": json.dumps({"case_id": case_id})}, [("images", "image.dcm", image)]
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        attempt = 0
        while time.monotonic() < deadline:
            try:
                answer = client.request("POST", path, body, headers)
            except OSError:
                answer = None
            if answer is not None:
                intake.statuses[answer.status] += 1
                intake.ms.append(answer.ms)
                if answer.status in (200, 201):
                    intake.sent += 1
                    break
                if answer.status < 500:
                    intake.errors.append(f"{case_id}: {answer.status} {answer.body[:200]!r}")
                    break
            attempt += 1
            intake.resends += 1
            time.sleep(min(2.0, 0.1 * 2**attempt))
        time.sleep(max(0.0, next_at - time.monotonic()))


# --- The readers --------------------------------------------------------------------------------


def read_paced(
    client: HttpClient, assignment_ids: list[int], stats: RunStats, *, think: float,
    deadline: float, rng: random.Random,
) -> None:  # fmt: skip
    """Open and submit each case in turn, reloading a page that failed, as a reader would."""
    for assignment_id in assignment_ids:
        time.sleep(think * rng.uniform(0.5, 1.5))
        case = None
        while case is None and time.monotonic() < deadline:
            try:
                case = open_case(client, assignment_id)
            except (OSError, RuntimeError):
                with stats.lock:
                    stats.retries += 1
                time.sleep(0.5)
        if case is None:
            return
        if submit_until_stored(client, case, stats, deadline=deadline) is None:
            return  # the next case stays locked until this one is stored
        with stats.lock:
            stats.modes["normal"] += 1
            stats.acknowledged.add(assignment_id)


# --- The run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrereadCount:
    cases: int
    duplicated_cases: int  # cases stored more than once under one case ID (never expected)
    done_once: int  # cases with exactly one pre-read of the model, done, with its findings
    missing: int  # cases without any pre-read of the model
    not_done: dict[str, int]  # status -> pre-reads of the model not done
    attempts: dict[int, int]  # attempts -> pre-reads


def count_prereads(slug: str, case_ids: list[str], model_id: int) -> PrereadCount:
    from django.db.models import Count

    from studyplatform.prereads.models import PreRead, PreReadStatus
    from studyplatform.studies.models import Case

    cases = Case.objects.filter(study__slug=slug, case_id__in=case_ids)
    per_id = Counter(cases.values_list("case_id", flat=True))
    findings = cases.values("study__finding_types").distinct().count()
    prereads = list(
        PreRead.objects.filter(case__in=cases, model_id=model_id)
        .annotate(n_findings=Count("findings"))
        .values("case_id", "status", "attempts", "n_findings")
    )
    per_case = Counter(p["case_id"] for p in prereads)
    done_once = sum(
        1
        for p in prereads
        if p["status"] == PreReadStatus.DONE
        and per_case[p["case_id"]] == 1
        and p["n_findings"] == findings
    )
    return PrereadCount(
        cases=len(per_id),
        duplicated_cases=sum(n - 1 for n in per_id.values()),
        done_once=done_once,
        missing=len(per_id) - len(per_case),
        not_done=dict(Counter(p["status"] for p in prereads if p["status"] != PreReadStatus.DONE)),
        attempts=dict(sorted(Counter(p["attempts"] for p in prereads).items())),
    )


def build_intake_study(slug: str) -> tuple[str, int]:
    """A study for arriving cases, a site token and the demo model; returns token and model id."""
    from studyplatform.prereads.registry import register_demo_model
    from studyplatform.prereads.services import pin_model
    from studyplatform.studies.models import FindingType, Site, Study
    from studyplatform.studies.phantoms import FINDING_NAMES, FINDING_TYPES
    from studyplatform.studies.services import issue_site_token

    study = Study.objects.create(slug=slug, title="Fault recovery intake", seed=7)
    model = register_demo_model()
    pin_model(study=study, model=model)  # arriving cases are pre-read by the study's pinned model
    for order, code in enumerate(FINDING_TYPES, start=1):
        FindingType.objects.create(study=study, code=code, name=FINDING_NAMES[code], order=order)
    site = Site.objects.create(code=f"{slug}-pacs", name="PACS")
    token = issue_site_token(study=study, site=site, name="PACS router")
    return token, model.pk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between cases")
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--reads-per-reader", type=int, default=8)
    parser.add_argument("--outage", type=float, default=5, help="seconds Redis stays down")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed")

    folder = Path(tempfile.mkdtemp(prefix="fault-recovery-"))
    print(f"working folder {folder}", flush=True)
    postgres = Postgres(free_port(), folder)
    redis = Redis(free_port(), folder)
    try:
        postgres.init()
        postgres.start()
        redis.start()
        return run(args, folder, postgres, redis)
    finally:
        redis.stop()
        postgres.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path, postgres: Postgres, redis: Redis) -> int:
    subprocess.run(
        [*postgres.prefix, str(postgres.bin / "createdb"), "-h", "127.0.0.1", "-p",
         str(postgres.port), "-U", "postgres", "faults"],
        check=True, capture_output=True,
    )  # fmt: skip
    var_dir = folder / "var"
    var_dir.mkdir()
    env = server_environment(postgres.url("faults"), var_dir, debug=False)
    env.update(
        {
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
            "PREREAD_SWEEP_INTERVAL": "2",
            "PREREAD_REQUEUE_AFTER": "10",
            "PREREAD_STALE_AFTER": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyplatform.settings"
    started = time.perf_counter()
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    import django

    django.setup()
    from pydicom.data import get_testdata_file

    image = Path(str(get_testdata_file("MR_small.dcm"))).read_bytes()
    slug = "faults-intake"
    token, model_id = build_intake_study(slug)
    plan = build_study(slug="faults-read", n_readers=args.readers, n_cases=args.reads_per_reader)
    cookies = session_cookies(list(plan))
    case_ids = [f"F{n:04d}" for n in range(args.cases)]
    print(f"services, schema and studies ready in {time.perf_counter() - started:.1f} s",
          flush=True)  # fmt: skip

    deadline = time.monotonic() + args.max_seconds
    intake, stats = Intake(), RunStats()
    worker = Worker(env, folder)
    port = free_port()
    faults: list[str] = []

    def note(what: str) -> None:
        line = f"{time.perf_counter() - wall:6.1f} s  {what}"
        faults.append(line)
        print(line, flush=True)

    with gunicorn(env, port=port, workers=args.workers, log=folder / "gunicorn.log"):
        worker.start()
        intake_seconds = args.cases * args.interval
        think = intake_seconds / max(1, args.reads_per_reader)
        threads = [
            threading.Thread(
                target=send_cases, args=(port,), daemon=True,
                kwargs={"slug": slug, "token": token, "case_ids": case_ids, "image": image,
                        "interval": args.interval, "intake": intake, "deadline": deadline},
            ),
            *(
                threading.Thread(
                    target=read_paced,
                    args=(HttpClient(port, {"sessionid": cookies[name]}), ids, stats),
                    kwargs={"think": think, "deadline": deadline, "rng": random.Random(name)},
                    daemon=True,
                )
                for name, ids in plan.items()
            ),
        ]  # fmt: skip
        wall = time.perf_counter()
        for thread in threads:
            thread.start()

        def done() -> int:
            return with_database(lambda: count_prereads(slug, case_ids, model_id).done_once)

        def running() -> int:
            from studyplatform.prereads.models import PreRead, PreReadStatus

            return PreRead.objects.filter(
                case__study__slug=slug, status=PreReadStatus.RUNNING
            ).count()

        def wait_until(condition: Callable[[], bool], what: str) -> None:
            while not condition():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {what}")
                time.sleep(0.2)

        try:
            wait_until(lambda: done() >= max(1, args.cases // 5), "a fifth pre-read")
            # Kill while a pre-read runs when one can be caught within a few seconds.
            catch_until = time.monotonic() + 10
            while not with_database(running) and time.monotonic() < catch_until:
                time.sleep(0.01)
            worker.kill()
            caught = with_database(running)
            note(
                f"worker killed (SIGKILL to its process group) after {done()} pre-reads done, "
                f"{caught} running"
            )
            time.sleep(1)
            worker.start()
            note("a new worker with the beat started")
            wait_until(lambda: intake.sent >= args.cases // 2, "half the cases sent")
            redis.stop()
            note(f"Redis stopped after {intake.sent} cases sent")
            time.sleep(args.outage)
            redis.start()
            note(f"Redis started again after {intake.sent} cases sent")
            wait_until(lambda: intake.sent >= 3 * args.cases // 4, "three quarters sent")
            postgres.restart()
            note(f"PostgreSQL restarted after {intake.sent} cases sent")
            for thread in threads:
                thread.join(timeout=max(1.0, deadline - time.monotonic()))
            note(f"intake and reading over: {intake.sent} cases sent")
            wait_until(lambda: done() >= intake.sent, "every sent case pre-read")
            note("every case sent is pre-read")
        except RuntimeError as error:
            note(str(error))
        finally:
            worker.stop()
        elapsed = time.perf_counter() - wall

    prereads = with_database(lambda: count_prereads(slug, case_ids, model_id))
    assignment_ids = [pk for ids in plan.values() for pk in ids]
    reads = with_database(lambda: tally(assignment_ids, stats.acknowledged))
    print(report(args, intake, prereads, stats, reads, elapsed))
    failed = (
        intake.errors
        or stats.errors
        or intake.sent != args.cases
        or prereads.cases != args.cases
        or prereads.duplicated_cases
        or prereads.done_once != args.cases
        or reads.losses
        or reads.duplicates
        or reads.unacknowledged
    )
    if failed:
        print(f"FAILED; logs in {folder} (kept)" if args.keep else "FAILED (rerun with --keep)")
    return 1 if failed else 0


def report(
    args: argparse.Namespace, intake: Intake, prereads: PrereadCount, stats: RunStats,
    reads: Any, elapsed: float,
) -> str:  # fmt: skip
    lines = [
        f"{elapsed:.1f} s from the first case to the last pre-read",
        f"cases in {prereads.cases} of {args.cases} sent (stored twice: "
        f"{prereads.duplicated_cases}); intake answers "
        + ", ".join(f"{k}: {v}" for k, v in sorted(intake.statuses.items()))
        + f"; resends {intake.resends}; p95 {percentile(intake.ms, 95):.0f} ms",
        f"pre-reads done exactly once {prereads.done_once} of {prereads.cases} "
        f"(without a pre-read {prereads.missing}; not done {prereads.not_done or 0}); "
        "attempts per pre-read " + ", ".join(f"{k}: {v}" for k, v in prereads.attempts.items()),
        f"reads stored {reads.reads}, lost {reads.losses}, duplicates {reads.duplicates}, "
        f"not acknowledged {reads.unacknowledged}; submit answers "
        + ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
        + f"; retries {stats.retries}",
    ]
    errors = intake.errors + stats.errors
    if errors:
        lines.append(f"errors ({len(errors)}): " + "; ".join(errors[:5]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
