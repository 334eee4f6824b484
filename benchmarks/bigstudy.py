"""A large study for the dashboard, export and analysis benchmarks, written with COPY.

50 readers x 5000 cases x 2 arms x 2 finding types by default: 500,000 assignments and reads
and 1,000,000 read findings (= long rows). Idempotent: an existing complete study is reused.
Run with DATABASE_URL pointing at a PostgreSQL database of your own (it is migrated first):

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/bigstudy.py \
        [--readers 50 --cases 10000 --findings 3 --slug bench-3m]

Several sizes live side by side under their own slugs (readers and their users are named
after the slug).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")
os.environ.setdefault("DEBUG", "true")

SLUG = "bench"
FINDINGS = ("nodule", "pneumothorax", "effusion", "consolidation")


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _copy(model: Any, rows: Any, fields: list[str]) -> None:
    from django.db import connection

    table = model._meta.db_table
    concrete = [f for f in model._meta.concrete_fields if not f.primary_key or f.attname in fields]
    columns = [f.column for f in concrete]
    names = [f.attname for f in concrete]
    defaults = {
        f.attname: f.get_db_prep_save(f.get_default(), connection)
        for f in concrete
        if f.attname not in fields
    }
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                values = dict(zip(fields, row, strict=True))
                copy.write_row([values.get(n, defaults.get(n)) for n in names])
        cursor.execute(
            # table names come from the models, never from input
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
        )


def build(
    n_readers: int = 50,
    n_cases: int = 5000,
    findings: tuple[str, ...] = FINDINGS[:2],
    slug: str = SLUG,
) -> Any:
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.db.models import Max

    from studyplatform.accounts.roles import COORDINATOR, ensure_roles
    from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding
    from studyplatform.reading.models import (
        Assignment,
        Enrolment,
        Read,
        Reader,
        ReadFinding,
        ReadingSession,
    )
    from studyplatform.studies.models import (
        Arm,
        Case,
        FindingType,
        MemberRole,
        Site,
        Study,
        StudyMembership,
        Truth,
    )

    assert connection.vendor == "postgresql", "the benchmark needs PostgreSQL (DATABASE_URL)"
    # The first study keeps its historical names; others are prefixed by their slug.
    prefix = "bench" if slug == SLUG else slug
    existing = Study.objects.filter(slug=slug).first()
    if existing is not None:
        n = ReadFinding.objects.filter(read__assignment__session__study=existing).count()
        if n == n_readers * n_cases * 2 * len(findings):
            return existing
        raise SystemExit(f"study {slug!r} exists with {n} read findings: drop the database")
    ensure_roles()
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    with transaction.atomic():
        study = Study.objects.create(
            slug=slug,
            title="Benchmark study",
            seed=1,
            state="open",
            opened_at=now - timedelta(days=60),
            # The model created below, pinned: readers and the analysis see only its output.
            ai_model_name=prefix,
            ai_model_version="1",
            ai_model_sha256="0" * 64,
        )
        arms = Arm.objects.bulk_create(
            [Arm(study=study, name="unassisted", label="U", order=1),
             Arm(study=study, name="assisted", label="A", shows_ai=True, order=2)]
        )  # fmt: skip
        fts = FindingType.objects.bulk_create(
            [FindingType(study=study, code=c, name=c, order=i) for i, c in enumerate(findings)]
        )
        sites = [
            Site.objects.get_or_create(code=f"bench-{s}", defaults={"name": s})[0] for s in "abc"
        ]
        cases = Case.objects.bulk_create(
            [Case(study=study, case_id=f"B{k:05d}", site=sites[k % 3], modality="DX",
                  manufacturer="Acme") for k in range(n_cases)],
            batch_size=2000,
        )  # fmt: skip
        truth = rng.random((n_cases, len(findings))) < 0.3
        Truth.objects.bulk_create(
            [Truth(case=c, finding_type=f, present=bool(truth[k, j]), source="synthetic")
             for k, c in enumerate(cases) for j, f in enumerate(fts)],
            batch_size=5000,
        )  # fmt: skip
        model = AIModel.objects.create(
            name=prefix, version="1", format="torchscript", path="/m.pt", sha256="0" * 64,
            finding_codes=list(findings),
        )  # fmt: skip
        pre = PreRead.objects.bulk_create(
            [PreRead(case=c, model=model, status="done", finished_at=now) for c in cases],
            batch_size=2000,
        )
        PreReadFinding.objects.bulk_create(
            [PreReadFinding(preread=p, finding_type=f, probability=float(
                np.clip(0.3 + 0.4 * truth[k, j] + rng.normal(0, 0.2), 0, 1)))
             for k, p in enumerate(pre) for j, f in enumerate(fts)],
            batch_size=5000,
        )  # fmt: skip
        users = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"{prefix}-r{i:02d}") for i in range(n_readers)]
        )
        readers = Reader.objects.bulk_create(
            [
                Reader(user=u, code=f"BR{i:02d}" if slug == SLUG else f"{prefix}-r{i:02d}")
                for i, u in enumerate(users)
            ]
        )
        Enrolment.objects.bulk_create([Enrolment(study=study, reader=r) for r in readers])
        sessions = ReadingSession.objects.bulk_create(
            [ReadingSession(study=study, reader=r, number=n,
                            available_from=None if n == 1 else now - timedelta(days=30))
             for r in readers for n in (1, 2)]
        )  # fmt: skip
        coordinator, _ = get_user_model().objects.get_or_create(username=f"{prefix}-coordinator")
        from django.contrib.auth.models import Group

        coordinator.groups.set([Group.objects.get(name=COORDINATOR)])
        StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    print(f"small tables: {time.perf_counter() - t0:.1f} s", flush=True)

    base_a = (Assignment.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    base_r = (Read.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    first_assisted = rng.random((n_readers, n_cases)) < 0.5
    plan = []  # (assignment id, reader index, case index, arm index, session)
    aid = base_a
    for i in range(n_readers):
        for s in (1, 2):
            position = 0
            for k in range(n_cases):
                for a in (0, 1):
                    session = 1 if (a == 1) == first_assisted[i, k] else 2
                    if session != s:
                        continue
                    position += 1
                    plan.append((aid, i, k, a, s, position))
                    aid += 1
    t1 = time.perf_counter()
    with transaction.atomic():
        _copy(
            Assignment,
            ((aid, sessions[2 * i + s - 1].pk, readers[i].pk, cases[k].pk, arms[a].pk, pos, 1, now)
             for aid, i, k, a, s, pos in plan),
            ["id", "session_id", "reader_id", "case_id", "arm_id", "position", "step",
             "created_at"],
        )  # fmt: skip
        print(f"assignments: {time.perf_counter() - t1:.1f} s", flush=True)
        start = now - timedelta(days=50)
        durations = np.exp(rng.normal(np.log(60), 0.3, len(plan)))
        _copy(
            Read,
            ((base_r + n, p[0], start + timedelta(minutes=n % 60000),
              start + timedelta(minutes=n % 60000, seconds=float(durations[n])),
              f"bench-{p[0]}", users[p[1]].pk)
             for n, p in enumerate(plan)),
            ["id", "assignment_id", "started_at", "submitted_at", "idempotency_key",
             "submitted_by_id"],
        )  # fmt: skip
        print(f"reads: {time.perf_counter() - t1:.1f} s", flush=True)
        conf = rng.integers(0, 101, (len(plan), len(findings)))
        _copy(
            ReadFinding,
            ((base_r + n, fts[j].pk, bool(conf[n, j] >= 50), int(conf[n, j]))
             for n in range(len(plan)) for j in range(len(findings))),
            ["read_id", "finding_type_id", "present", "confidence"],
        )  # fmt: skip
        print(f"read findings: {time.perf_counter() - t1:.1f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
    return study


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The size and slug of the study to build: ``--readers --cases --findings --slug``."""
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--findings", type=int, default=2, choices=range(1, len(FINDINGS) + 1))
    parser.add_argument("--slug", default=SLUG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_arguments(parser)
    args = parser.parse_args()
    setup_django()
    build(args.readers, args.cases, FINDINGS[: args.findings], args.slug)


if __name__ == "__main__":
    main()
