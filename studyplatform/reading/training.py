"""Where a reader stands with a study's training: the one rule, used by the gate and the pages.

A study with training cases (``Case.training``) opens a reader's analysed sessions only once
the reader's training session is complete, or a coordinator waived the training (with a
reason, audited). A study without training cases needs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db.models import Exists, OuterRef

from studyplatform.reading.models import Enrolment, ReadingSession
from studyplatform.studies.models import Case, Study

__all__ = [
    "TrainingState",
    "TrainingStatus",
    "has_training",
    "training_status",
    "training_statuses",
]


class TrainingState(StrEnum):
    NOT_REQUIRED = "not required"
    PENDING = "pending"
    DONE = "done"
    WAIVED = "waived"


@dataclass(frozen=True)
class TrainingStatus:
    reader: str
    enrolment_id: int
    state: TrainingState
    cases: int  # training cases of the study
    reads_done: int
    reads_total: int
    started_at: datetime | None
    completed_at: datetime | None
    waived_at: datetime | None
    waived_by: str
    waiver_reason: str
    session_id: int | None

    @property
    def passed(self) -> bool:
        """Whether the reader's analysed sessions may open."""
        return self.state != TrainingState.PENDING

    @property
    def closed_reason(self) -> str:
        """Why the analysed sessions are closed, in the reader's words ("" when they are not)."""
        if self.passed:
            return ""
        return (
            f"your analysed sessions open after your training "
            f"({self.reads_done} of {self.reads_total or self.cases} training reads done)"
        )


def training_passed(*, study_id: int, reader_id: int) -> bool:
    """Whether the reader's analysed sessions may open (one query: the reading gate's).

    True when the study has no training cases, the reader's training session is complete, the
    training was waived, or the reader is not enrolled (then nothing else lets them read).
    """
    row = (
        Enrolment.objects.filter(study_id=study_id, reader_id=reader_id)
        .annotate(
            needed=Exists(Case.objects.filter(study_id=OuterRef("study_id"), training=True)),
            done=Exists(
                ReadingSession.objects.filter(
                    study_id=OuterRef("study_id"),
                    reader_id=OuterRef("reader_id"),
                    training=True,
                    completed_at__isnull=False,
                )
            ),
        )
        .order_by()
        .values_list("training_waived_at", "needed", "done")
        .first()
    )
    if row is None:
        return True
    waived_at, needed, done = row
    return waived_at is not None or not needed or done


def has_training(study_id: int) -> bool:
    return Study.objects.filter(pk=study_id, cases__training=True).exists()


def _status(
    enrolment: Enrolment, session: ReadingSession | None, cases: int, done: int, total: int
) -> TrainingStatus:
    if enrolment.training_waived_at is not None:
        state = TrainingState.WAIVED
    elif cases == 0:
        state = TrainingState.NOT_REQUIRED
    elif session is not None and session.completed_at is not None:
        state = TrainingState.DONE
    else:
        state = TrainingState.PENDING
    return TrainingStatus(
        reader=enrolment.reader.code,
        enrolment_id=enrolment.pk,
        state=state,
        cases=cases,
        reads_done=done,
        reads_total=total,
        started_at=session.started_at if session else None,
        completed_at=session.completed_at if session else None,
        waived_at=enrolment.training_waived_at,
        waived_by=str(enrolment.training_waived_by or ""),
        waiver_reason=enrolment.training_waiver_reason,
        session_id=session.pk if session else None,
    )


def training_statuses(study: Study) -> list[TrainingStatus]:
    """Every enrolled reader's training, in reader order (the report's table)."""
    cases = study.cases.filter(training=True).count()
    sessions = {
        s.reader_id: s for s in ReadingSession.objects.filter(study=study, training=True).order_by()
    }
    counts: dict[int, tuple[int, int]] = {}
    for session in sessions.values():
        assignments = session.assignments.order_by()
        counts[session.reader_id] = (
            assignments.filter(reads__isnull=False).distinct().count(),
            assignments.count(),
        )
    return [
        _status(e, sessions.get(e.reader_id), cases, *counts.get(e.reader_id, (0, 0)))
        for e in study.enrolments.select_related("reader", "training_waived_by").order_by(
            "reader__code"
        )
    ]


def training_status(*, study_id: int, reader_id: int) -> TrainingStatus | None:
    """One reader's training in one study; None when the reader is not enrolled in it."""
    enrolment = (
        Enrolment.objects.filter(study_id=study_id, reader_id=reader_id)
        .select_related("reader", "training_waived_by")
        .first()
    )
    if enrolment is None:
        return None
    cases = Study.objects.get(pk=study_id).cases.filter(training=True).count()
    session = (
        ReadingSession.objects.filter(study_id=study_id, reader_id=reader_id, training=True)
        .order_by()
        .first()
    )
    done = total = 0
    if session is not None:
        assignments = session.assignments.order_by()
        done = assignments.filter(reads__isnull=False).distinct().count()
        total = assignments.count()
    return _status(enrolment, session, cases, done, total)
