"""The one bridge from the database to the statistics: a study's reads as the long frame.

One row per reader x case x arm x finding type, with the DESIGN.md columns, then the correction
columns, then the reading telemetry (``analysis.longreads.TELEMETRY_COLUMNS``: the original read's,
empty for a read without telemetry), then the reader's qualifications (``reader_specialty``,
``reader_years_experience``, ``reader_role``: empty when not stated), which the report's reader
subgroups use.

Only the effective read of each assignment counts: the original read, or its latest
correction (the read that no other read supersedes). A correction fixes the answer, not the
reading: ``started_at``, ``submitted_at`` and ``duration_s`` are those of the original read,
``call`` and ``confidence`` the corrected ones. ``corrected`` (0/1) flags the row,
``original_call`` and ``original_confidence`` hold what the reader first submitted (equal to
``call`` and ``confidence`` on an uncorrected row, so an analysis of the reads as first submitted
needs no other source), and ``corrected_at`` is the time of the latest correction (empty when none).

Reads come from one query of plain values (no model instances); cases, truth, AI
probabilities, readers, arms and finding types come from small per-study lookups (their size
grows with cases, never with reads), so :func:`iter_long_rows` streams a million rows in
constant memory through a server-side cursor (the long export). The analysis takes the same
rows as one data frame, built column by column in :mod:`.frame`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from analysis.longreads import TELEMETRY_COLUMNS
from studyplatform.prereads.models import AIModel, PreReadFinding, PreReadStatus
from studyplatform.prereads.selectors import finding_thresholds, pinned_model
from studyplatform.reading.models import Read, Reader, ReadFinding, ReadTelemetry
from studyplatform.studies.models import Case, Study, Truth

# Bump when the analysis or its inputs change meaning, so cached results are recomputed.
ANALYSIS_SCHEMA = "5"

LongRow = tuple[Any, ...]


def study_ai_model(study: Study) -> AIModel | None:
    """The AI model whose probabilities the study's analysis uses: the study's pinned model.

    ``None`` when the study pins none; PinnedModelError (a ValueError: the analysis fails with
    its message) when the pinned model is not registered with the pinned sha256.
    """
    return pinned_model(study)


def reader_qualifications(study: Study) -> dict[int, tuple[str, str, int | None, str]]:
    """The study's readers by primary key: code, specialty, years of experience and role.

    A reader counts once they have an analysed session: training sessions make no reads of the
    study's data."""
    return {
        pk: (code, specialty, years, role)
        for pk, code, specialty, years, role in Reader.objects.filter(
            sessions__study=study, sessions__training=False
        )
        .values_list("pk", "code", "specialty", "years_experience", "role")
        .distinct()
    }


def ai_thresholds(study: Study, findings: list[str]) -> dict[str, float]:
    """The operating threshold per finding type: the finding type's ``ai_threshold`` when set,
    else the pinned model's spec threshold, else the model's threshold (0.5 without a model)."""
    thresholds = finding_thresholds(study, study_ai_model(study))
    return {code: thresholds.get(code, 0.5) for code in findings}


@dataclass(frozen=True)
class _Lookups:
    study: str
    readers: dict[int, str]
    qualifications: dict[int, tuple[str, int | None, str]]
    arms: dict[int, str]
    findings: dict[int, str]
    cases: dict[int, tuple[str, str, str, str]]
    truth: dict[tuple[int, int], int]
    ai: dict[tuple[int, int], float]
    original_times: dict[int, tuple[datetime, datetime]]
    original_answers: dict[tuple[int, int], tuple[bool, int]]
    original_telemetry: dict[int, tuple[Any, ...]]


@dataclass(frozen=True)
class _Originals:
    original_times: dict[int, tuple[datetime, datetime]]
    answers: dict[tuple[int, int], tuple[bool, int]]


_TELEMETRY_FIELDS = TELEMETRY_COLUMNS  # ReadTelemetry's fields have the columns' names
_NO_TELEMETRY: tuple[Any, ...] = (None,) * len(_TELEMETRY_FIELDS)


def _telemetry_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A read's telemetry as the long row holds it: the overlay flag 0/1, all empty if none."""
    if values[0] is None:
        return _NO_TELEMETRY
    viewed, total, time_s, overlay_on, overlay_s, first = values
    return (viewed, total, time_s, int(overlay_on), overlay_s, first)


def _original_telemetry(study: Study) -> dict[int, tuple[Any, ...]]:
    """The telemetry of the original reads that a correction replaced, by assignment (few)."""
    return {
        values[0]: _telemetry_values(values[1:])
        for values in ReadTelemetry.objects.filter(
            read__assignment__session__study=study,
            read__supersedes__isnull=True,
            read__superseded_by__isnull=False,
        ).values_list("read__assignment_id", *_TELEMETRY_FIELDS)
    }


def _originals(study: Study) -> _Originals:
    """The original reads of corrected assignments: their times and answers (few rows)."""
    times: dict[int, tuple[datetime, datetime]] = {}
    answers: dict[tuple[int, int], tuple[bool, int]] = {}
    for assignment, finding, present, confidence, started, submitted in ReadFinding.objects.filter(
        read__assignment__session__study=study,
        read__assignment__session__training=False,
        read__supersedes__isnull=True,
        read__superseded_by__isnull=False,
    ).values_list(
        "read__assignment_id",
        "finding_type_id",
        "present",
        "confidence",
        "read__started_at",
        "read__submitted_at",
    ):
        times[assignment] = (started, submitted)
        answers[(assignment, finding)] = (present, confidence)
    return _Originals(original_times=times, answers=answers)


def _lookups(study: Study, model: AIModel | None) -> _Lookups:
    ai: dict[tuple[int, int], float] = {}
    if model is not None:
        ai = {
            (case, finding): prob
            for case, finding, prob in PreReadFinding.objects.filter(
                preread__case__study=study,
                preread__case__training=False,
                preread__model=model,
                preread__status=PreReadStatus.DONE,
            ).values_list("preread__case_id", "finding_type_id", "probability")
        }
    originals = _originals(study)
    qualified = reader_qualifications(study)
    return _Lookups(
        study=study.slug,
        readers={pk: code for pk, (code, _, _, _) in qualified.items()},
        qualifications={pk: (s, y, r) for pk, (_, s, y, r) in qualified.items()},
        arms=dict(study.arms.values_list("pk", "name")),
        findings=dict(study.finding_types.values_list("pk", "code")),
        cases={
            pk: (case_id, site, modality, manufacturer)
            for pk, case_id, site, modality, manufacturer in Case.objects.filter(
                study=study, training=False
            ).values_list("pk", "case_id", "site__code", "modality", "manufacturer")
        },
        truth={
            (case, finding): int(present)
            for case, finding, present in Truth.objects.filter(
                case__study=study, case__training=False
            ).values_list("case_id", "finding_type_id", "present")
        },
        ai=ai,
        original_times=originals.original_times,
        original_answers=originals.answers,
        original_telemetry=_original_telemetry(study),
    )


_READ_FIELDS = (
    "read__assignment__reader_id",
    "read__assignment__case_id",
    "read__assignment__arm_id",
    "read__assignment__session__number",
    "finding_type_id",
    "present",
    "confidence",
    "read__started_at",
    "read__submitted_at",
    "read__assignment_id",
    "read__supersedes_id",
    *(f"read__telemetry__{name}" for name in _TELEMETRY_FIELDS),
    "read_id",
)


def _superseded(study: Study) -> set[int]:
    """IDs of reads that a correction replaced (few: corrections are rare)."""
    return set(
        Read.objects.filter(assignment__session__study=study, supersedes__isnull=False).values_list(
            "supersedes_id", flat=True
        )
    )


def _effective_findings(study: Study, chunk_size: int | None = None) -> Iterator[tuple[Any, ...]]:
    """Findings of every effective read, in submission order (read ID, then finding type).

    Superseded reads are dropped here, not by an anti-join: PostgreSQL's estimate for that join
    on the mostly-NULL ``supersedes`` column picks a plan that takes minutes for a million rows.
    Ordering by the read lets PostgreSQL walk the (read, finding type) index with no sort, so
    the first rows leave at once. Streaming (``chunk_size``) runs in a transaction: outside one,
    Django's server-side cursor is declared WITH HOLD, which makes PostgreSQL compute and store
    the whole result before the first row.
    """
    superseded = _superseded(study)
    query = _findings_query(study)
    if chunk_size is None:
        yield from (v for v in query if v[-1] not in superseded)
        return
    with transaction.atomic():
        for values in query.iterator(chunk_size=chunk_size):
            if values[-1] not in superseded:
                yield values


def _findings_query(study: Study) -> Any:
    return (
        # Training reads (the training session's) are never analysed.
        ReadFinding.objects.filter(
            read__assignment__session__study_id=study.pk,
            read__assignment__session__training=False,
        )
        .order_by("read_id", "finding_type_id")
        .values_list(*_READ_FIELDS)
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _row(values: tuple[Any, ...], lk: _Lookups) -> LongRow:
    reader, case, arm, session, finding, present, confidence = values[:7]
    started, submitted, assignment, supersedes = values[7:11]
    telemetry = _telemetry_values(values[11:-1])
    original_call: int | None = int(present)
    original_confidence: int | None = confidence
    corrected_at: str | None = None
    if supersedes is not None:
        corrected_at = _iso(submitted)
        started, submitted = lk.original_times.get(assignment, (started, submitted))
        telemetry = lk.original_telemetry.get(assignment, _NO_TELEMETRY)
        first = lk.original_answers.get((assignment, finding))
        # A finding type the original read lacked (added by an amendment) has no original.
        original_call, original_confidence = (
            (int(first[0]), first[1]) if first is not None else (None, None)
        )
    case_id, site, modality, manufacturer = lk.cases[case]
    return (
        lk.study,
        lk.readers[reader],
        case_id,
        lk.arms[arm],
        session,
        lk.findings[finding],
        lk.truth.get((case, finding)),
        int(present),
        confidence,
        lk.ai.get((case, finding)),
        site,
        modality,
        manufacturer,
        _iso(started),
        _iso(submitted),
        round((submitted - started).total_seconds(), 3),
        int(supersedes is not None),
        original_call,
        original_confidence,
        corrected_at,
        *telemetry,
        *lk.qualifications[reader],
    )


@dataclass(frozen=True)
class LongRows:
    """The long rows of a study as an iterable, with the AI model they took probabilities from."""

    study: Study
    model: AIModel | None
    chunk_size: int = 5000

    def __iter__(self) -> Iterator[LongRow]:
        lk = _lookups(self.study, self.model)
        for values in _effective_findings(self.study, self.chunk_size):
            yield _row(values, lk)


def iter_long_rows(study: Study, *, chunk_size: int = 5000) -> LongRows:
    """Stream the study's long rows (tuples in LONG_COLUMNS order) in constant memory."""
    return LongRows(study=study, model=study_ai_model(study), chunk_size=chunk_size)
