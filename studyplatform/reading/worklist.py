"""The reader's worklist: sessions (no arms), their state, and the reader's training."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone

from studyplatform.accounts.roles import COORDINATOR, READER, STATISTICIAN
from studyplatform.reading.models import Reader, ReadingSession
from studyplatform.reading.services.washout import Opening, opening, readable_state
from studyplatform.reading.training import TrainingStatus, training_status
from studyplatform.studies.models import Study, StudyState

__all__ = ["Home", "SessionSummary", "TrainingEntry", "home_for"]


@dataclass(frozen=True)
class SessionSummary:
    pk: int
    study: str
    study_title: str
    number: int
    total: int
    done: int
    state: str  # "open", "locked" (washout or study not open) or "done"
    available_from: datetime | None  # when a locked session opens (the computed date)
    study_open: bool
    waiting_for: int | None = None  # locked until the reader finishes this session
    untrained: str = ""  # locked until the reader's training is done: why, in words


@dataclass(frozen=True)
class TrainingEntry:
    """A study in which the reader trains (it has training cases), and how far the reader is."""

    study: str
    study_title: str
    status: TrainingStatus
    readable: bool  # the study is a draft or open: training can be read now


@dataclass(frozen=True)
class Home:
    roles: tuple[str, ...]
    reader_code: str | None
    sessions: tuple[SessionSummary, ...]
    staff_studies: tuple[str, ...]
    can_admin: bool
    training: tuple[TrainingEntry, ...] = ()


def _session_state(
    session: ReadingSession,
    previous: ReadingSession | None,
    total: int,
    done: int,
    now: datetime,
    untrained: str = "",
) -> tuple[str, Opening]:
    found = opening(session, previous, session.study, now, untrained=untrained)
    if session.completed_at is not None or (total and done >= total):
        return "done", found
    return ("open" if found.open else "locked"), found


def _summary(
    row: ReadingSession, previous: ReadingSession | None, now: datetime, untrained: str
) -> SessionSummary:
    state, found = _session_state(row, previous, row.total, row.done, now, untrained)  # type: ignore[attr-defined]
    return SessionSummary(
        pk=row.pk,
        study=row.study.slug,
        study_title=row.study.title,
        number=row.number,
        total=row.total,  # type: ignore[attr-defined]
        done=row.done,  # type: ignore[attr-defined]
        state=state,
        available_from=found.opens_at,
        study_open=row.study.state == StudyState.OPEN,
        waiting_for=found.waiting_for,
        untrained=untrained if state == "locked" and found.reason == untrained else "",
    )


def _training_entries(reader: Reader) -> tuple[TrainingEntry, ...]:
    """The reader's training in every enrolled study that has training cases, unless locked."""
    studies = (
        Study.objects.filter(enrolments__reader=reader, cases__training=True)
        .exclude(state=StudyState.LOCKED)
        .distinct()
        .order_by("slug")
    )
    entries = []
    for study in studies:
        status = training_status(study_id=study.pk, reader_id=reader.pk)
        if status is not None:
            readable = readable_state(study, training=True)
            entries.append(TrainingEntry(study.slug, study.title, status, readable))
    return tuple(entries)


def home_for(*, user: User) -> Home:
    """What the landing page shows: the reader's sessions (no arms), the staff's studies."""
    roles = tuple(
        sorted(
            set(user.groups.values_list("name", flat=True)) & {READER, COORDINATOR, STATISTICIAN}
        )
    )
    reader = Reader.objects.filter(user=user).first()
    sessions: tuple[SessionSummary, ...] = ()
    training: tuple[TrainingEntry, ...] = ()
    now = timezone.now()
    if reader is not None:
        training = _training_entries(reader)
        untrained = {entry.study: entry.status.closed_reason for entry in training}
        rows = (
            ReadingSession.objects.filter(reader=reader, training=False)
            .exclude(study__state=StudyState.DRAFT)
            .select_related("study")
            .annotate(
                total=Count("assignments", distinct=True),
                done=Count(
                    "assignments",
                    filter=Q(assignments__reads__isnull=False),
                    distinct=True,
                ),
            )
            .order_by("study__slug", "number")
        )
        listed = list(rows)
        by_number = {(row.study_id, row.number): row for row in listed}
        sessions = tuple(
            _summary(
                row,
                by_number.get((row.study_id, row.number - 1)),
                now,
                untrained.get(row.study.slug, ""),
            )
            for row in listed
        )
    staff_studies = tuple(
        Study.objects.filter(memberships__user=user).values_list("slug", flat=True).distinct()
    )
    return Home(
        roles=roles,
        reader_code=reader.code if reader else None,
        sessions=sessions,
        staff_studies=staff_studies,
        can_admin=user.is_staff,
        training=training,
    )
