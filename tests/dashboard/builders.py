"""Bulk builders of whole studies for dashboard tests and benchmarks.

A study is made from a simulated long frame (:func:`analysis.simulate.simulate_long_frame`) with
bulk inserts: every reader reads every case in both arms over two sessions, with truth and an
AI pre-read per case. Tens of thousands of rows take a second or two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from analysis.simulate import simulate_long_frame
from studyplatform.accounts.roles import COORDINATOR, READER, STATISTICIAN, ensure_roles
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding, PreReadStatus
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


@dataclass
class BuiltStudy:
    study: Study
    long: pd.DataFrame
    coordinator: object
    statistician: object
    reader_users: list


def _user(username: str, role: str):
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(f"pw-{username}")
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    return user


def build_study(
    slug: str = "sim",
    *,
    seed: int = 7,
    n_readers: int = 4,
    n_cases: int = 30,
    findings: tuple[str, ...] = ("nodule", "pneumothorax"),
    read_fraction: float = 1.0,
    sessions_read: tuple[int, ...] = (1, 2),
    staff: bool = True,
    marks: Callable[[Any], list[dict[str, int]]] | None = None,
) -> BuiltStudy:
    """A crossover study with reads from a simulated long frame (``read_fraction`` of them,
    in ``sessions_read``: ``(1,)`` is every reader part-way, session 1 done). ``marks`` gives
    each read finding's marks from its long-frame row (none without it)."""
    ensure_roles()
    long = simulate_long_frame(
        seed, n_readers=n_readers, n_cases=n_cases, findings=findings, study=slug
    )
    long["reader"] = long["reader"].str.replace("reader-", f"{slug}-r", regex=False)
    now = timezone.now()
    study = Study.objects.create(
        slug=slug,
        title=f"Study {slug}",
        seed=seed,
        state="open",
        opened_at=now - timedelta(days=20),
        # The model created below, pinned as opening requires for an assisted arm.
        ai_model_name=f"{slug}-model",
        ai_model_version="1",
        ai_model_sha256="0" * 64,
    )
    arms: dict[Any, Arm] = {
        a.name: a
        for a in Arm.objects.bulk_create(
            [
                Arm(study=study, name="unassisted", label="Unassisted", order=1),
                Arm(study=study, name="assisted", label="Assisted", shows_ai=True, order=2),
            ]
        )
    }
    fts: dict[Any, FindingType] = {
        f.code: f
        for f in FindingType.objects.bulk_create(
            [
                FindingType(study=study, code=c, name=c.title(), order=i)
                for i, c in enumerate(findings)
            ]
        )
    }
    sites = {
        code: Site.objects.get_or_create(code=code, defaults={"name": code})[0]
        for code in pd.unique(long["site"])
    }
    per_case = long.drop_duplicates(["case", "finding"])
    first = per_case.drop_duplicates("case")
    cases: dict[Any, Case] = {
        c.case_id: c
        for c in Case.objects.bulk_create(
            [
                Case(study=study, case_id=r.case, site=sites[r.site], modality=r.modality,
                     manufacturer=r.manufacturer)
                for r in first.itertuples()
            ]
        )
    }  # fmt: skip
    Truth.objects.bulk_create(
        [
            Truth(case=cases[r.case], finding_type=fts[r.finding], present=bool(r.truth),
                  source="synthetic")
            for r in per_case.itertuples()
        ]
    )  # fmt: skip
    model = AIModel.objects.create(
        name=f"{slug}-model", version="1", format="torchscript", path="/m.pt", sha256="0" * 64,
        finding_codes=list(findings), threshold=0.5,
    )  # fmt: skip
    prereads = {
        p.case_id: p
        for p in PreRead.objects.bulk_create(
            [
                PreRead(case=c, model=model, status=PreReadStatus.DONE, finished_at=now)
                for c in cases.values()
            ]
        )
    }
    PreReadFinding.objects.bulk_create(
        [
            PreReadFinding(preread=prereads[cases[r.case].pk], finding_type=fts[r.finding],
                           probability=float(r.ai_probability))
            for r in per_case.itertuples()
        ]
    )  # fmt: skip
    readers = {}
    reader_users = []
    for code in pd.unique(long["reader"]):
        user = _user(code, READER)
        reader_users.append(user)
        readers[code] = Reader.objects.create(user=user, code=code)
    Enrolment.objects.bulk_create([Enrolment(study=study, reader=r) for r in readers.values()])
    sessions = {
        (code, n): s
        for (code, n), s in zip(
            [(code, n) for code in readers for n in (1, 2)],
            ReadingSession.objects.bulk_create(
                [
                    ReadingSession(
                        study=study, reader=readers[code], number=n,
                        available_from=None if n == 1 else now - timedelta(days=2),
                    )
                    for code in readers
                    for n in (1, 2)
                ]
            ),
            strict=True,
        )
    }  # fmt: skip
    reads_frame = long.drop_duplicates(["reader", "case", "arm"]).reset_index(drop=True)
    reads_frame["position"] = reads_frame.groupby(["reader", "session"]).cumcount() + 1
    assignments = Assignment.objects.bulk_create(
        [
            Assignment(session=sessions[(r.reader, int(r.session))], reader=readers[r.reader],
                       case=cases[r.case], arm=arms[r.arm], position=int(r.position))
            for r in reads_frame.itertuples()
        ]
    )  # fmt: skip
    n_read = round(read_fraction * len(reads_frame))
    chosen = [
        i
        for i, r in enumerate(reads_frame.itertuples())
        if i < n_read and int(r.session) in sessions_read
    ]
    rows = list(reads_frame.itertuples())
    reads = Read.objects.bulk_create(
        [
            Read(
                assignment=assignments[i],
                started_at=pd.Timestamp(rows[i].started_at, tz="UTC").to_pydatetime(),
                submitted_at=pd.Timestamp(rows[i].submitted_at, tz="UTC").to_pydatetime(),
                idempotency_key=f"{slug}-{assignments[i].pk}",
                submitted_by=assignments[i].reader.user,
            )
            for i in chosen
        ]
    )
    key = {(rows[i].reader, rows[i].case, rows[i].arm): j for j, i in enumerate(chosen)}
    ReadFinding.objects.bulk_create(
        [
            ReadFinding(read=reads[key[(r.reader, r.case, r.arm)]], finding_type=fts[r.finding],
                        present=bool(r.call), confidence=int(r.confidence),
                        marks=marks(r) if marks is not None else [])
            for r in long.itertuples()
            if (r.reader, r.case, r.arm) in key
        ]
    )  # fmt: skip
    coordinator = statistician = None
    if staff:
        coordinator = _user(f"{slug}-coordinator", COORDINATOR)
        statistician = _user(f"{slug}-statistician", STATISTICIAN)
        StudyMembership.objects.bulk_create(
            [
                StudyMembership(study=study, user=coordinator, role=MemberRole.COORDINATOR),
                StudyMembership(study=study, user=statistician, role=MemberRole.STATISTICIAN),
            ]
        )
    return BuiltStudy(study, long, coordinator, statistician, reader_users)
