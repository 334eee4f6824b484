"""Locking under load: readers keep submitting while the coordinator signs the study lock.

Builds an open crossover study in a PostgreSQL database (its own slug; nothing else is touched,
the machinery of ``load_nothing_lost.py``), starts gunicorn on the loopback interface, and lets
``--readers`` simulated readers work through their first session continuously. After
``--lock-after`` seconds the coordinator signs the lock through the admin's signature page (HTTP,
password re-entered). Readers keep going until the server refuses them. Afterwards the script
counts the reads dated after the signature (must be 0), the submits refused after the lock, and
runs ``verify_audit`` (the recomputed digest must match the signed one). Exits non-zero if a
read is dated after the signature or verify_audit fails.

Usage::

    .venv/bin/python benchmarks/load_lock.py --database-url postgres://.../DB
        [--readers 20] [--cases 60] [--workers 4] [--lock-after 20] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from load_nothing_lost import (  # noqa: E402
    HttpClient,
    build_study,
    free_port,
    gunicorn,
    open_case,
    percentile,
    session_cookies,
    set_up_django,
)

_FORM_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
PASSWORD = secrets.token_urlsafe(16)  # the coordinator re-enters it on the signature page


@dataclass
class LockStats:
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: int = 0
    refused_after_lock: int = 0
    submit_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def add_coordinator(slug: str) -> str:
    """A coordinator of the study with a real password (the signature page asks for it)."""
    from django.contrib.auth.models import Group, User

    from studyplatform.accounts.roles import COORDINATOR, ensure_roles
    from studyplatform.studies.models import MemberRole, Study, StudyMembership

    ensure_roles()
    username = f"{slug}-coordinator"
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR))
    study = Study.objects.get(slug=slug)
    StudyMembership.objects.create(study=study, user=user, role=MemberRole.COORDINATOR)
    return username


def reader_loop(
    client: HttpClient, ids: list[int], stats: LockStats, locked: threading.Event, deadline: float
) -> None:
    for pk in ids:
        if time.monotonic() > deadline:
            return
        try:
            case = open_case(client, pk)
        except (OSError, RuntimeError) as error:
            with stats.lock:
                if locked.is_set():
                    stats.refused_after_lock += 1  # the page refuses a locked study
                else:
                    stats.errors.append(str(error))
            return
        while time.monotonic() < deadline:
            try:
                answer = client.request("POST", case.submit_url, case.body, case.headers)
            except OSError:
                continue
            with stats.lock:
                stats.statuses[answer.status] += 1
                stats.submit_ms.append(answer.ms)
                if answer.status in (200, 201):
                    stats.acknowledged += 1
                elif answer.status < 500 and locked.is_set():
                    stats.refused_after_lock += 1
                elif answer.status < 500:
                    stats.errors.append(f"{case.submit_url}: {answer.status} {answer.body[:200]!r}")
            if answer.status < 500:
                break
        else:
            return
        if answer.status not in (200, 201):
            return


def sign_lock_over_http(port: int, cookie: str, study_id: int) -> tuple[int, float]:
    """GET the admin's lock page, POST the password; return the status and the seconds it took."""
    client = HttpClient(port, {"sessionid": cookie})
    path = f"/admin/studies/study/{study_id}/lock/"
    page = client.request("GET", path)
    token = _FORM_CSRF.search(page.body)
    if page.status != 200 or token is None:
        raise RuntimeError(f"the lock page answered {page.status}")
    body = urlencode({"csrfmiddlewaretoken": token.group(1).decode(), "password": PASSWORD})
    started = time.perf_counter()
    answer = client.request(
        "POST",
        path,
        body.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://127.0.0.1:{port}{path}",
        },
    )
    return answer.status, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL", ""))
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=60, help="cases per reader in session 1")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--lock-after", type=float, default=20, help="seconds before signing")
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("give a PostgreSQL --database-url (or LOAD_DATABASE_URL)")

    env, var_dir = set_up_django(args.database_url, prefix="load-lock-")
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from studyplatform.audit.models import Signature
    from studyplatform.reading.models import Read
    from studyplatform.studies.models import Study

    slug = f"lock-{int(time.time())}"
    plan = build_study(slug=slug, n_readers=args.readers, n_cases=args.cases)
    coordinator = add_coordinator(slug)
    cookies = session_cookies([*plan, coordinator])
    study = Study.objects.get(slug=slug)
    print(f"study {slug}: {args.readers} readers x {args.cases} cases; media in {var_dir}")

    stats, locked = LockStats(), threading.Event()
    port = free_port()
    with gunicorn(env, port=port, workers=args.workers, log=var_dir / "gunicorn.log"):
        deadline = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(
                target=reader_loop,
                args=(HttpClient(port, {"sessionid": cookies[name]}), ids, stats, locked, deadline),
                daemon=True,
            )
            for name, ids in plan.items()
        ]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.lock_after)
        before_lock = stats.acknowledged
        locked.set()  # from here on a refusal is expected, not an error
        status, sign_s = sign_lock_over_http(port, cookies[coordinator], study.pk)
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic() + 30))
        wall = time.perf_counter() - wall

    signature = Signature.objects.filter(study=study, kind=Signature.Kind.STUDY_LOCK).first()
    if signature is None:
        print(f"the lock was not signed (the page answered {status})")
        return 1
    reads = Read.objects.filter(assignment__session__study=study)
    late = reads.filter(submitted_at__gt=signature.signed_at).count()
    out = StringIO()
    try:
        call_command("verify_audit", stdout=out)
        verified = out.getvalue().strip()
    except CommandError as error:
        verified = f"FAILED: {error}"
    print(
        f"{args.readers} readers, {wall:.1f} s wall; lock signed after {args.lock_after:.0f} s "
        f"(page answered {status} in {sign_s * 1000:.0f} ms)\n"
        f"reads stored {reads.count()} ({before_lock} acknowledged before the lock was "
        f"requested, {stats.acknowledged} in all)\n"
        f"reads dated after the signature: {late}\n"
        f"refused after the lock: {stats.refused_after_lock}; submit answers: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
        + f"\nsubmit latency p50 {percentile(stats.submit_ms, 50):.0f} ms, "
        f"p95 {percentile(stats.submit_ms, 95):.0f} ms\n"
        f"verify_audit: {verified}"
    )
    if stats.errors:
        print(f"errors ({len(stats.errors)}): " + "; ".join(stats.errors[:5]))
    return 1 if late or verified.startswith("FAILED") or stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
