"""Stored facts a submission checklist answers from: the model, inputs, readers, truth, failures.

Each function reads one topic from the database and returns plain frozen values; the checklist
(:mod:`studyplatform.dashboard.exports.checklist`) words them. Nothing here is computed twice:
the AI thresholds are :func:`~studyplatform.dashboard.selectors.longframe.ai_thresholds` (what
readers saw and what the analysis uses), the reads the long frame's effective reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from studyplatform.audit.models import Signature
from studyplatform.audit.selectors import allocation_revealed, recorded_seed_commitment
from studyplatform.dashboard.selectors.longframe import ai_thresholds, study_ai_model
from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.reading.models import AllocationRecord, Enrolment, Read, ReadingSession
from studyplatform.studies.models import Case, Image, Study, Truth


@dataclass(frozen=True)
class ReaderRow:
    code: str
    specialty: str
    years_experience: int | None
    group: int | None


def reader_rows(study: Study) -> list[ReaderRow]:
    """The enrolled readers' qualifications, by pseudonym (no names)."""
    enrolments = Enrolment.objects.filter(study=study).select_related("reader").order_by("reader")
    return [
        ReaderRow(e.reader.code, e.reader.specialty, e.reader.years_experience, e.group)
        for e in enrolments
    ]


@dataclass(frozen=True)
class InputQuality:
    """What happened to the inputs: pre-reads of the pinned model by status, failures, and
    images whose header says burned-in annotation."""

    model: AIModel | None
    prereads: dict[str, int]
    without_preread: int
    failures: list[tuple[str, str]]
    burned_in_cases: list[str]
    images: int


def input_quality(study: Study) -> InputQuality:
    model = study_ai_model(study)
    cases = Case.objects.filter(study=study, training=False)
    counts: dict[str, int] = {}
    failures: list[tuple[str, str]] = []
    without = cases.count()
    if model is not None:
        prereads = PreRead.objects.filter(case__study=study, case__training=False, model=model)
        counts = dict(Counter(prereads.values_list("status", flat=True)))
        without -= sum(counts.values())
        failures = [
            (case_id, (error.strip().splitlines() or [""])[-1][:200])
            for case_id, error in prereads.filter(status=PreReadStatus.FAILED)
            .order_by("case__case_id")
            .values_list("case__case_id", "error")
        ]
    images = Image.objects.filter(case__study=study, case__training=False)
    burned = sorted(
        set(images.filter(burned_in_annotation="YES").values_list("case__case_id", flat=True))
    )
    return InputQuality(model, counts, without, failures, burned, images.count())


@dataclass(frozen=True)
class CaseMix:
    sites: list[tuple[str, str, int]]
    devices: list[tuple[str, str, int]]
    prevalence: list[tuple[str, int, int, int]]
    truth_sources: dict[str, int]


def case_mix(study: Study) -> CaseMix:
    """Cases per site and per modality and manufacturer; per finding type the positive,
    negative and missing truths; the truth's sources."""
    cases = Case.objects.filter(study=study, training=False)
    sites = Counter(cases.values_list("site__code", "site__name"))
    devices = Counter(cases.values_list("modality", "manufacturer"))
    truths = Truth.objects.filter(case__study=study, case__training=False)
    n_cases = cases.count()
    prevalence = []
    for code in study.finding_types.order_by("order", "code").values_list("code", flat=True):
        calls = Counter(truths.filter(finding_type__code=code).values_list("present", flat=True))
        prevalence.append((code, calls[True], calls[False], n_cases - calls[True] - calls[False]))
    return CaseMix(
        sites=[(code, name, n) for (code, name), n in sorted(sites.items())],
        devices=[(m, maker or "unknown", n) for (m, maker), n in sorted(devices.items())],
        prevalence=prevalence,
        truth_sources=dict(Counter(truths.values_list("source", flat=True))),
    )


@dataclass(frozen=True)
class Allocation:
    design: str
    fingerprint: str
    rows: int
    created_at: datetime
    seed_commitment: str | None
    seed: int | None


def allocation(study: Study) -> Allocation | None:
    """The stored allocation's record, the recorded seed commitment, and the seed once revealed."""
    record = AllocationRecord.objects.filter(study=study).first()
    if record is None:
        return None
    seed = study.seed if allocation_revealed(study) else None
    return Allocation(
        record.design,
        record.fingerprint,
        record.rows,
        record.created_at,
        recorded_seed_commitment(study),
        seed,
    )


@dataclass(frozen=True)
class Conduct:
    washout_waivers: int
    sessions: int
    corrections: int
    reads: int
    first_read: datetime | None
    last_read: datetime | None
    signatures: list[tuple[str, str, datetime, str]]


def conduct(study: Study) -> Conduct:
    """Sessions and waivers, reads and corrections, and the signatures made on the study."""
    sessions = ReadingSession.objects.filter(study=study, training=False)
    reads = Read.objects.filter(
        assignment__session__study=study, assignment__session__training=False
    ).order_by()
    times = reads.filter(supersedes__isnull=True).values_list("submitted_at", flat=True)
    signatures = [
        (s.get_kind_display(), s.signer.get_username(), s.signed_at, s.data_sha256)
        for s in Signature.objects.filter(study=study).select_related("signer")
    ]
    return Conduct(
        washout_waivers=sessions.filter(washout_waived=True).count(),
        sessions=sessions.count(),
        corrections=reads.filter(supersedes__isnull=False).count(),
        reads=reads.filter(supersedes__isnull=True).count(),
        first_read=min(times, default=None),
        last_read=max(times, default=None),
        signatures=signatures,
    )


@dataclass(frozen=True)
class AIFailure:
    """A case and finding type the AI got wrong at its threshold, and what readers did.

    ``kind`` is ``missed`` (present, probability below the threshold) or ``false flag``
    (absent, at or above it); ``correct`` maps each arm to (readers right, readers who read it).
    """

    case: str
    finding: str
    kind: str
    probability: float
    threshold: float
    correct: dict[str, tuple[int, int]]


def ai_failures(study: Study, long: pd.DataFrame) -> list[AIFailure]:
    """The AI's misses and false flags on cases with truth, with the readers' calls per arm.

    ``long`` is the study's long reads frame (effective reads); a case and finding type that
    nobody has read yet is not listed (the readers' side is what the analysis explains).
    """
    if long.empty:
        return []
    thresholds = ai_thresholds(study, [str(f) for f in pd.unique(long["finding"])])
    rows = long[long["truth"].notna() & long["ai_probability"].notna()].copy()
    if rows.empty:
        return []
    rows["threshold"] = rows["finding"].astype(str).map(thresholds)
    flagged = rows["ai_probability"] >= rows["threshold"]
    truth = rows["truth"].astype(int) == 1
    rows = rows[flagged != truth]
    arms = [str(a) for a in study.arms.order_by("order", "name").values_list("name", flat=True)]
    failures = []
    for (case, finding), group in rows.groupby(["case", "finding"], observed=True, sort=True):
        present = int(group["truth"].iloc[0]) == 1
        right = group["call"].astype(int) == int(present)
        correct = {
            arm: (int(right[group["arm"] == arm].sum()), int((group["arm"] == arm).sum()))
            for arm in arms
        }
        failures.append(
            AIFailure(
                case=str(case),
                finding=str(finding),
                kind="missed" if present else "false flag",
                probability=float(group["ai_probability"].iloc[0]),
                threshold=float(group["threshold"].iloc[0]),
                correct=correct,
            )
        )
    return failures
