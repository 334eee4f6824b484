"""The washout between a reader's sessions: when a session opens, waivers, and violations.

Session ``k`` of a reader opens no earlier than the later of

- its scheduled date (``available_from``, set when the study opens), and
- the reader's completion of session ``k - 1`` plus the study's ``washout_days``,

and never while session ``k - 1`` is incomplete: a reader never has two sessions of the same
cases open, nor before the reader's training is done or waived
(``studyplatform.reading.training``). A training session opens while the study is a draft or
open. A coordinator may waive the washout of one session, explicitly and on the record
(:func:`waive_washout`): the session then opens as soon as the previous one is complete. The
dashboard lists every session whose stored times break these rules (:func:`violations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.reading.models import ReadingSession
from studyplatform.reading.services.errors import ReadingError
from studyplatform.reading.training import training_passed, training_status
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import MemberRole, Study, StudyState

__all__ = [
    "Opening",
    "Violation",
    "WaiverError",
    "may_waive",
    "opening",
    "previous_session",
    "readable_state",
    "session_opening",
    "untrained_reason",
    "violations",
    "waive_washout",
]


class WaiverError(ReadingError):
    """The washout of a session cannot be waived as asked."""


@dataclass(frozen=True)
class Opening:
    """Whether a session may be read now, and if not, until when or after what."""

    open: bool
    opens_at: datetime | None  # the computed date (None: at once, or not known yet)
    waiting_for: int | None  # the previous session's number while it is incomplete
    reason: str  # why it is closed, in the reader's words ("" when open)


def previous_session(session: ReadingSession) -> ReadingSession | None:
    """The same reader's session before ``session`` in the study, if any."""
    if session.number <= 1 or session.training:
        return None
    return (
        ReadingSession.objects.filter(
            study_id=session.study_id,
            reader_id=session.reader_id,
            training=False,
            number=session.number - 1,
        )
        .order_by()
        .first()
    )


def readable_state(study: Study, *, training: bool) -> bool:
    """Whether the study's state lets a reader read: open, or a draft for training."""
    return study.state == StudyState.OPEN or (training and study.state == StudyState.DRAFT)


def opening(
    session: ReadingSession,
    previous: ReadingSession | None,
    study: Study,
    now: datetime,
    *,
    untrained: str = "",
) -> Opening:
    """The rule, on rows already loaded (the worklist evaluates it for many sessions).

    ``untrained`` is why the reader's training keeps the analysed sessions closed ("" when it
    does not: training done, waived or not required).
    """
    if not readable_state(study, training=session.training):
        reason = f"the study is {study.get_state_display().lower()}, not open for reading"
        return Opening(False, None, None, reason)
    if untrained and not session.training:
        return Opening(False, None, None, untrained)
    if previous is not None and previous.completed_at is None:
        reason = f"this session opens after you finish session {previous.number}"
        return Opening(False, None, previous.number, reason)
    opens_at = session.available_from
    if previous is not None and previous.completed_at is not None:
        if session.washout_waived:
            earliest = previous.completed_at
        else:
            earliest = previous.completed_at + timedelta(days=study.washout_days)
        opens_at = max(opens_at, earliest) if opens_at is not None else earliest
    if opens_at is not None and opens_at > now:
        reason = f"this session is locked until {opens_at:%Y-%m-%d %H:%M} UTC (washout)"
        return Opening(False, opens_at, None, reason)
    return Opening(True, opens_at, None, "")


def untrained_reason(session: ReadingSession) -> str:
    """Why the reader's training keeps ``session`` closed ("" for a training session)."""
    if session.training or training_passed(study_id=session.study_id, reader_id=session.reader_id):
        return ""
    status = training_status(study_id=session.study_id, reader_id=session.reader_id)
    return status.closed_reason if status is not None else ""


def session_opening(session: ReadingSession, now: datetime) -> Opening:
    """Whether ``session`` (its study loaded) may be read at ``now``."""
    return opening(
        session,
        previous_session(session),
        session.study,
        now,
        untrained=untrained_reason(session),
    )


def may_waive(user: User, study: Study) -> bool:
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return study.has_member(user.pk, MemberRole.COORDINATOR)


def waive_washout(*, session: ReadingSession, user: User, reason: str) -> ReadingSession:
    """Waive the washout before ``session``: it opens once the previous session is complete.

    For a coordinator of the study or a superuser, with a reason; audited
    (``session.washout_waived``) and shown on the dashboard and in the admin. A scheduled date
    still in the future is brought forward to now (the audit event keeps the old one). The
    waiver never lets a session open while the previous one is incomplete.
    """
    reason = reason.strip()
    if not reason:
        raise WaiverError("a washout waiver needs a reason (it is recorded and shown)")
    if not may_waive(user, session.study):
        raise PermissionDenied(
            f"only a coordinator of study {session.study.slug!r} or a superuser may waive a washout"
        )
    now = timezone.now()
    with transaction.atomic():
        lock_study_for_write(session.study)
        session = (
            ReadingSession.objects.select_for_update().select_related("study").get(pk=session.pk)
        )
        if session.number <= 1 or session.training:
            raise WaiverError("the first session has no washout before it")
        if session.washout_waived:
            raise WaiverError(
                f"the washout before session {session.number} of {session.reader} was waived "
                f"already (by {session.washout_waived_by}: {session.washout_waiver_reason})"
            )
        if session.started_at is not None:
            raise WaiverError(f"session {session.number} of {session.reader} has started already")
        before = {"washout_waived": False, "available_from": session.available_from}
        session.washout_waived = True
        session.washout_waiver_reason = reason
        session.washout_waived_by = user
        session.washout_waived_at = now
        if session.available_from is not None and session.available_from > now:
            session.available_from = now
        session.save(
            update_fields=[
                "washout_waived",
                "washout_waiver_reason",
                "washout_waived_by",
                "washout_waived_at",
                "available_from",
            ]
        )
        audit_record(
            actor=user,
            action=Action.WASHOUT_WAIVE,
            obj=session,
            study=session.study,
            before=before,
            after={
                "washout_waived": True,
                "available_from": session.available_from,
                "reader": session.reader.code,
                "session": session.number,
            },
            reason=reason,
        )
    return session


@dataclass(frozen=True)
class SessionTimes:
    """What :func:`violations` needs of a session."""

    reader: str
    number: int
    available_from: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    waived: bool


@dataclass(frozen=True)
class Violation:
    kind: str  # sessions_overlap, washout_violation, completed_before_open, started_before_open
    reader: str
    number: int
    message: str


def violations(sessions: Iterable[SessionTimes], washout_days: int) -> list[Violation]:
    """Sessions whose stored times break the washout rules, in reader and session order."""
    by_key = {(s.reader, s.number): s for s in sessions}
    found = []
    for (reader, number), s in sorted(by_key.items()):
        where = f"Reader {reader}, session {number}"
        previous = by_key.get((reader, number - 1))
        if s.started_at is not None and previous is not None:
            if previous.completed_at is None or s.started_at < previous.completed_at:
                found.append(
                    Violation(
                        "sessions_overlap",
                        reader,
                        number,
                        f"{where} started before session {number - 1} was completed: two "
                        "sessions of the same cases were open at once.",
                    )
                )
            elif not s.waived and s.started_at < previous.completed_at + timedelta(
                days=washout_days
            ):
                gap = (s.started_at - previous.completed_at).days
                found.append(
                    Violation(
                        "washout_violation",
                        reader,
                        number,
                        f"{where} started {gap} days after session {number - 1} was completed, "
                        f"within the {washout_days}-day washout, without a waiver.",
                    )
                )
        if s.available_from is not None:
            if s.completed_at is not None and s.completed_at < s.available_from:
                found.append(
                    Violation(
                        "completed_before_open",
                        reader,
                        number,
                        f"{where} was completed {s.completed_at:%Y-%m-%d} before it opened "
                        f"({s.available_from:%Y-%m-%d}).",
                    )
                )
            elif s.started_at is not None and s.started_at < s.available_from and not s.waived:
                found.append(
                    Violation(
                        "started_before_open",
                        reader,
                        number,
                        f"{where} started {s.started_at:%Y-%m-%d} before it opened "
                        f"({s.available_from:%Y-%m-%d}).",
                    )
                )
    return found
