"""Time ``manage.py analyze STUDY --json`` on a large study, as a whole process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sp_speed_big \
        .venv/bin/python benchmarks/bench_analyze.py [--readers 50 --cases 5000 --findings 2]
        [--slug bench] [--repeat 1] [--no-stages] [--report-view N]

Builds the study with COPY on first use (``benchmarks/bigstudy.py``). Each run forgets the
study's cached analysis first, then runs the command in a child process with its output thrown
away, and reports its wall time and peak resident memory (the child's own ``ru_maxrss``, from
``os.wait4``: what ``/usr/bin/time -v`` calls "Maximum resident set size"). One more run, with
a timer around each function named in ``STAGES``, gives the time per stage (stages nest, so
they do not add up to the total; timers cost nothing next to a profiler, which slowed the
pure-Python stages down five times).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bigstudy import FINDINGS, ROOT, add_study_arguments, build, setup_django

# (label, module, function): a stage is every call of that function, timed in the process.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("data version (cache key)", "studyplatform.dashboard.selectors", "data_version"),
    ("long frame from the database", "studyplatform.dashboard.selectors", "long_reads_frame"),
    ("analysis, all of it", "analysis.study", "analyze_study"),
    ("  check_long_frame (every call)", "analysis.report", "check_long_frame"),
    ("  analyze_long_frame", "analysis.report", "analyze_long_frame"),
    ("    MRMC ROC (or_analysis)", "analysis.mrmc", "or_analysis"),
    ("    missed findings", "analysis.missed", "missed_findings"),
    ("    agreement", "analysis.agreement", "long_frame_agreement"),
    ("    AI standalone", "analysis.standalone", "ai_standalone"),
    ("    reading time", "analysis.readtime", "reading_time"),
    ("  drift", "analysis.drift", "score_drift"),
    ("  figures", "analysis.study", "_figure"),
    ("run_analysis: frame, analysis, storing", "studyplatform.dashboard.services",
     "run_analysis"),
)  # fmt: skip


def _forget(slug: str) -> None:
    from studyplatform.dashboard.models import AnalysisResult

    AnalysisResult.objects.filter(study__slug=slug).delete()


def _command(slug: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), "analyze", slug, "--json"]


def run_once(slug: str) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one ``manage.py analyze SLUG --json``."""
    _forget(slug)
    t0 = time.perf_counter()
    child = subprocess.Popen(_command(slug), cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"manage.py analyze {slug} failed (status {status})")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _timed_child(slug: str) -> None:
    """In this process: wrap every stage's function in a timer, run the command, print JSON.

    A function is replaced wherever a loaded module holds it (``from x import f`` copies), and
    the functions that ``analyze_long_frame`` imports when it runs are replaced at their source.
    """
    import importlib
    import json
    from collections.abc import Callable
    from typing import Any

    from django.core.management import call_command

    spent: dict[str, list[float]] = {}

    def timed(key: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent.setdefault(key, []).append(time.perf_counter() - t0)

        return run

    for _, module, name in STAGES:
        original = getattr(importlib.import_module(module), name)
        wrapper = timed(f"{module}.{name}", original)
        for loaded in list(sys.modules.values()):
            for attribute, value in list(vars(loaded).items()) if loaded else ():
                if value is original:
                    setattr(loaded, attribute, wrapper)
    t0 = time.perf_counter()
    with Path(os.devnull).open("w") as devnull:
        call_command("analyze", slug, json=True, stdout=devnull)
    spent["command"] = [time.perf_counter() - t0]
    print(json.dumps(spent))


def stages_once(slug: str) -> list[tuple[str, float, int]]:
    """Seconds and calls per stage, from one more run of the command with timers."""
    import json

    _forget(slug)
    out = subprocess.run(
        [sys.executable, __file__, "--slug", slug, "--timed-child"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    spent = json.loads(out.strip().splitlines()[-1])
    return [("the command, after start-up", spent["command"][0], 1)] + [
        (label, sum(spent.get(f"{m}.{n}", [])), len(spent.get(f"{m}.{n}", [])))
        for label, m, n in STAGES
    ]


def report_view(slug: str, arrivals: int) -> None:
    """Time the analysis report page (and its cache key alone) while reads arrive.

    In one transaction rolled back at the end (the benchmark study keeps its size): a
    statistician of the study requests the report ``arrivals`` times with nothing new, then
    ``arrivals`` times each after a new read arrives (a correction of an original read, with
    its findings, submitted now). A changed key makes the page queue a new analysis (after
    commit, so never here) and show its progress; the time is the request's, in this process.
    """

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction
    from django.test import Client
    from django.utils import timezone

    from studyplatform.accounts.roles import STATISTICIAN
    from studyplatform.dashboard.selectors import data_version
    from studyplatform.reading.models import Read, ReadFinding
    from studyplatform.studies.models import MemberRole, Study, StudyMembership

    settings.ALLOWED_HOSTS = ["*"]
    study = Study.objects.get(slug=slug)
    t0 = time.perf_counter()
    data_version(study)
    print(f"data_version, first call of the process (streams every read): "
          f"{time.perf_counter() - t0:.2f} s")  # fmt: skip
    with transaction.atomic():
        user = get_user_model().objects.create(username=f"{slug}-bench-statistician")
        user.groups.set([Group.objects.get(name=STATISTICIAN)])
        StudyMembership.objects.create(study=study, user=user, role=MemberRole.STATISTICIAN)
        client = Client()
        client.force_login(user)
        url = f"/dashboard/{slug}/report/"
        originals = iter(
            Read.objects.filter(assignment__session__study=study, supersedes__isnull=True)
            .order_by("-id")
            .prefetch_related("findings")[: arrivals + 1]
        )

        def arrive() -> None:
            read = next(originals)
            now = timezone.now()
            fix = Read.objects.create(
                assignment_id=read.assignment_id, supersedes=read, correction_reason="bench",
                started_at=read.started_at, submitted_at=now,
                idempotency_key=f"bench-fix-{read.pk}-{now.timestamp()}",
                submitted_by_id=read.submitted_by_id,
            )  # fmt: skip
            ReadFinding.objects.bulk_create(
                [ReadFinding(read=fix, finding_type_id=f.finding_type_id,
                             present=not f.present, confidence=100 - f.confidence)
                 for f in read.findings.all()]
            )  # fmt: skip

        for label, before in (("nothing new", None), ("a new read before each", arrive)):
            keys, pages = [], []
            for _ in range(arrivals):
                if before is not None:
                    before()
                t0 = time.perf_counter()
                data_version(study)
                keys.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                response = client.get(url)
                pages.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.status_code
            print(
                f"{label}: data_version median {1000 * statistics.median(keys):.0f} ms "
                f"(max {1000 * max(keys):.0f}); report page median "
                f"{1000 * statistics.median(pages):.0f} ms (max {1000 * max(pages):.0f}), "
                f"{arrivals} requests"
            )
        transaction.set_rollback(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-stages", action="store_true", help="skip the timed run")
    parser.add_argument("--timed-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--report-view", type=int, metavar="N", default=0,
        help="instead: time the report page N times unchanged and N times as reads arrive",
    )  # fmt: skip
    args = parser.parse_args()
    setup_django()
    if args.timed_child:
        _timed_child(args.slug)
        return
    if args.report_view:
        build(args.readers, args.cases, FINDINGS[: args.findings], args.slug)
        report_view(args.slug, args.report_view)
        return
    build(args.readers, args.cases, FINDINGS[: args.findings], args.slug)
    from studyplatform.reading.models import ReadFinding

    rows = ReadFinding.objects.filter(read__assignment__session__study__slug=args.slug).count()
    runs = [run_once(args.slug) for _ in range(args.repeat)]
    walls = [w for w, _ in runs]
    print(
        f"manage.py analyze {args.slug} --json: {args.readers} readers x {args.cases} cases x "
        f"{args.findings} finding types, {rows:,} long rows"
    )
    print(
        f"wall median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max "
        f"{max(walls):.1f}) over {len(runs)} run(s); peak RSS max "
        f"{max(m for _, m in runs):.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )
    if args.no_stages:
        return
    print("per stage, one more run with timers (s, calls; stages nest):")
    for label, seconds, calls in stages_once(args.slug):
        print(f"  {label:<50} {seconds:7.2f} s  {calls:>3}")


if __name__ == "__main__":
    main()
