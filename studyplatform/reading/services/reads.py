"""The reader's use cases: open an assignment, save a draft, submit a read, correct a read.

Times are the server's. Opening stamps ``opened_at`` once (the start of the read, and the moment
the arm stops being concealed). Submitting writes the Read and its findings once: a second submit
(same idempotency key, a retry, or a second tab) returns the first. A submitted read never
changes; ``correct_read`` adds a new Read that supersedes it and says why, and only while the
reader has not seen the AI's output for the case.

Every write here starts its transaction with the study guard (:func:`_lock_open_study`): the
study's state is read from its locked row, so a lock signed while a reader works refuses the
next write, and a write in flight holds the signature back until it commits.

A report holds, per finding type, the call (present or absent) and a rating on the protocol's
scale (the probability 0-100 that the finding is present), both required: there is no default.
A call that contradicts its rating (``studyplatform.reading.rating``) is refused, or accepted
once the reader confirms it, as the study's ``contradiction_rule`` says.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.reading import selectors
from studyplatform.reading.models import (
    Assignment,
    Read,
    ReadDraft,
    ReadFinding,
    ReadingSession,
)
from studyplatform.reading.rating import contradicts, describe_contradiction
from studyplatform.reading.services.errors import (
    ContradictionError,
    CorrectionRefusedError,
    InvalidReadError,
    NotAvailableError,
    OutOfOrderError,
    StudyClosedError,
)
from studyplatform.reading.services.marks import (
    FindingAnswer,
    check_marks,
    parse_marks,
)
from studyplatform.reading.services.measurements import (
    audit_view as measurements_audit_view,
)
from studyplatform.reading.services.measurements import (
    create_measurements,
    parse_measurements,
)
from studyplatform.reading.services.telemetry import parse_telemetry, store_telemetry
from studyplatform.reading.services.washout import (
    readable_state,
    session_opening,
    untrained_reason,
)
from studyplatform.studies.guards import StudyLockedError, lock_study_for_write
from studyplatform.studies.models import ContradictionRule, FindingType, Study

__all__ = [
    "MAX_DRAFT_BYTES",
    "FindingAnswer",
    "correct_read",
    "open_assignment",
    "parse_findings",
    "save_draft",
    "session_available",
    "submit_read",
]

MAX_DRAFT_BYTES = 64 * 1024


def session_available(session: ReadingSession, now: datetime) -> bool:
    """A session can be read when its study is open and its washout rules allow it."""
    return session_opening(session, now).open


def _earlier_unsubmitted(assignment: Assignment) -> bool:
    """Whether an assignment before this one in the session's order still lacks its read."""
    return Assignment.objects.filter(
        Q(position__lt=assignment.position)
        | Q(position=assignment.position, step__lt=assignment.step),
        session_id=assignment.session_id,
        reads__isnull=True,
    ).exists()


def open_assignment(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Open the reader's assignment: check it may be read now, stamp its start once.

    ``assignment`` comes with its session and study loaded (the selector does that). Raises
    NotAvailableError when the session is locked (washout, study not open) or an earlier case of the
    session is still unread (cases are read in the allocated order; in the sequential design this
    is what locks the unassisted read before the AI is shown).
    """
    now = now or timezone.now()
    session = assignment.session
    if not session_available(session, now):
        raise NotAvailableError(_locked_message(session))
    if assignment.opened_at is not None:
        return assignment
    if _earlier_unsubmitted(assignment):
        raise OutOfOrderError("an earlier case of this session is not submitted yet")
    with transaction.atomic():
        # The reader's training was checked with the session's opening rule above.
        _lock_open_study(session.study_id, training=session.training)
        updated = Assignment.objects.filter(pk=assignment.pk, opened_at__isnull=True).update(
            opened_at=now
        )
        if updated:
            assignment.opened_at = now
            # The conditional update makes this request the first opening: no draft exists yet.
            assignment.draft = ReadDraft.objects.create(assignment=assignment, started_at=now)
            if session.started_at is None:
                ReadingSession.objects.filter(pk=session.pk, started_at__isnull=True).update(
                    started_at=now
                )
        else:
            assignment.refresh_from_db(fields=["opened_at"])
    return assignment


def _require_trained(session: ReadingSession) -> None:
    """Refuse a write to an analysed session while the reader's training is pending."""
    reason = untrained_reason(session)
    if reason:
        raise NotAvailableError(reason)


def _lock_open_study(study_id: int, *, training: bool = False) -> Study:
    """The first statement of every reader write: lock the study's row, refuse unless it is open.

    The state comes from the locked row, not from the request's copy of the study: a lock
    signed after the page loaded refuses the write, and the signature waits for a write that
    got here first. A training read (``training``) may also be written while the study is a
    draft: it is never analysed.
    """
    try:
        study = lock_study_for_write(study_id)
    except StudyLockedError as error:
        raise StudyClosedError(
            "the study is locked for analysis: it accepts no new read, draft or correction"
        ) from error
    if not readable_state(study, training=training):
        raise NotAvailableError(
            f"the study is {study.get_state_display().lower()}, not open for reading"
        )
    return study


def _locked_message(session: ReadingSession) -> str:
    return session_opening(session, timezone.now()).reason


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds NUL, which PostgreSQL text and jsonb refuse."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def save_draft(*, assignment: Assignment, data: Any) -> ReadDraft:
    """Replace the draft of an opened, unsubmitted assignment with ``data`` (a JSON object)."""
    if not isinstance(data, dict):
        raise InvalidReadError("a draft must be a JSON object")
    if len(json.dumps(data)) > MAX_DRAFT_BYTES:
        raise InvalidReadError(f"a draft may hold at most {MAX_DRAFT_BYTES} bytes")
    if _has_nul(data):
        raise InvalidReadError("a draft may not contain NUL characters")
    if assignment.opened_at is None:
        raise NotAvailableError("open the case before saving a draft")
    with transaction.atomic():
        _lock_open_study(assignment.session.study_id, training=assignment.session.training)
        updated = ReadDraft.objects.filter(assignment=assignment).update(
            data=data, updated_at=timezone.now()
        )
        if not updated:
            # No draft: the read was submitted (the draft is removed then) - nothing to save.
            raise NotAvailableError("this case is already submitted")
    return ReadDraft(assignment=assignment, data=data)


def parse_findings(
    finding_types: list[FindingType], raw: Any, image_sizes: dict[int, tuple[int, int]]
) -> dict[int, FindingAnswer]:
    """Validate a report's findings: ``{code: {present, confidence, marks}}`` for every type.

    The call and the rating (``confidence``: the probability 0-100 that the finding is present)
    are both required; a rating left unset is refused, never taken as a default. ``image_sizes``
    maps image position to (rows, columns); marks must fall inside the image. Returns answers by
    finding type primary key.
    """
    if not isinstance(raw, dict):
        raise InvalidReadError("findings must be an object keyed by finding code")
    unknown = sorted(set(raw) - {ft.code for ft in finding_types})
    if unknown:
        raise InvalidReadError(f"unknown finding types: {', '.join(map(str, unknown[:10]))}")
    answers = {}
    for ft in finding_types:
        item = raw.get(ft.code)
        if not isinstance(item, dict):
            raise InvalidReadError(f"{ft.name}: present or absent is required")
        present, confidence = item.get("present"), item.get("confidence")
        if not isinstance(present, bool):
            raise InvalidReadError(f"{ft.name}: choose present or absent")
        if confidence is None or confidence == "":
            raise InvalidReadError(
                f"{ft.name}: set the probability (0-100) that the finding is present; "
                "it has no default"
            )
        if isinstance(confidence, bool) or not isinstance(confidence, int):
            raise InvalidReadError(f"{ft.name}: the probability must be a whole number 0-100")
        if not 0 <= confidence <= 100:
            raise InvalidReadError(f"{ft.name}: probability {confidence} is outside 0-100")
        answers[ft.pk] = FindingAnswer(present, confidence, parse_marks(ft, item.get("marks", [])))
    return answers


def _contradictions(
    answers: dict[int, FindingAnswer], finding_types: list[FindingType]
) -> list[dict[str, Any]]:
    return [
        {"code": ft.code, "name": ft.name, "present": a.present, "confidence": a.confidence}
        for ft in finding_types
        if (a := answers.get(ft.pk)) is not None
        and contradicts(present=a.present, confidence=a.confidence)
    ]


def _apply_contradiction_rule(
    study: Study,
    answers: dict[int, FindingAnswer],
    finding_types: list[FindingType],
    *,
    confirmed: bool,
) -> bool:
    """Refuse contradictions as the study's rule says; return whether confirmed ones are kept."""
    found = _contradictions(answers, finding_types)
    if not found:
        return False
    text = "; ".join(
        describe_contradiction(name=c["name"], present=c["present"], confidence=c["confidence"])
        for c in found
    )
    if study.contradiction_rule == ContradictionRule.CONFIRM:
        if confirmed:
            return True
        raise ContradictionError(
            f"{text}; confirm that you mean it, or change the call or the rating",
            contradictions=found,
            confirmable=True,
        )
    raise ContradictionError(
        f"{text}; change the call or the rating", contradictions=found, confirmable=False
    )


def submit_read(
    *,
    assignment: Assignment,
    user: User,
    idempotency_key: str,
    findings: Any,
    free_text: str,
    finding_types: list[FindingType],
    image_sizes: dict[int, tuple[int, int]],
    confirm_contradictions: bool = False,
    image_slices: dict[int, tuple[int, int]] | None = None,
    measurements: Any = None,
    telemetry: Any = None,
) -> tuple[Read, bool]:
    """Store the read of an opened assignment once; return it and whether it was created.

    A second submit with the same key - or any submit once the assignment has its read -
    returns the stored read unchanged. The last read of a session completes the session and
    starts the washout clock of the reader's next one. A call that contradicts its rating is
    refused unless the study's rule is "confirm" and ``confirm_contradictions`` is true (the
    read then records ``contradiction_confirmed``). The read records the protocol version in
    force, read from the locked study. ``image_slices`` maps image position to (series,
    slice): a mark on a slice must name its own. ``measurements`` are the reader's length
    lines, checked and their lengths recomputed by :mod:`.measurements`. ``telemetry`` (how the
    case was read) is validated against the case and the arm and stored with the read, capped by
    its server times (:mod:`.telemetry`).
    """
    if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 64:
        raise InvalidReadError("the submission needs an idempotency key of 8-64 characters")
    # The selector annotates ``submitted``; without it, look. A first submit skips the look-up:
    # a concurrent or repeated one is caught by the unique constraints below.
    if getattr(assignment, "submitted", True):
        existing = _existing_read(assignment, idempotency_key)
        if existing is not None:
            return existing, False
    if assignment.opened_at is None:
        raise NotAvailableError("open the case before submitting it")
    if not isinstance(free_text, str) or len(free_text) > 10_000:
        raise InvalidReadError("free text must be at most 10000 characters")
    if "\x00" in free_text:
        raise InvalidReadError("free text may not contain NUL characters")
    answers = parse_findings(finding_types, findings, image_sizes)
    check_marks(answers, image_sizes, image_slices)
    lines = parse_measurements(assignment.case_id, measurements)
    behaviour = parse_telemetry(
        telemetry,
        image_slices=image_slices if image_slices is not None else _image_slices(assignment),
        shows_ai=assignment.arm.shows_ai,
    )
    try:
        with transaction.atomic():
            session = assignment.session
            study = _lock_open_study(session.study_id, training=session.training)
            _require_trained(session)
            confirmed = _apply_contradiction_rule(
                study, answers, finding_types, confirmed=confirm_contradictions
            )
            now = timezone.now()
            # The draft was created at the first opening with started_at = opened_at.
            read = Read.objects.create(
                assignment=assignment,
                free_text=free_text,
                started_at=assignment.opened_at,
                submitted_at=now,
                idempotency_key=idempotency_key,
                submitted_by=user,
                protocol_version=study.protocol_version,
                contradiction_confirmed=confirmed,
            )
            _create_findings(read, answers)
            create_measurements(read, lines)
            if behaviour is not None:
                store_telemetry(read=read, telemetry=behaviour)
            ReadDraft.objects.filter(assignment=assignment).delete()
            _complete_session_if_done(assignment.session, now)
            after = _audit_view(read, answers, finding_types)
            if lines:
                after["measurements"] = measurements_audit_view(lines)
            audit_record(
                actor=user,
                action=Action.READ_SUBMIT,
                obj=read,
                study=assignment.session.study,
                after=after,
            )
    except IntegrityError:
        # A concurrent submit of the same assignment won the race: return its read.
        existing = _existing_read(assignment, idempotency_key)
        if existing is None:
            raise
        return existing, False
    return read, True


def _image_slices(assignment: Assignment) -> dict[int, tuple[int, int]]:
    return {
        im.position: (im.series, im.slice_number)
        for im in selectors.case_images(assignment.case_id)
    }


def _existing_read(assignment: Assignment, key: str) -> Read | None:
    # Read's default ordering goes through the assignment's and joins half the schema.
    by_key = Read.objects.filter(idempotency_key=key).order_by("pk").first()
    if by_key is not None:
        if by_key.assignment_id != assignment.pk:
            raise InvalidReadError("this idempotency key belongs to another submission")
        return by_key
    return (
        Read.objects.filter(assignment=assignment, supersedes__isnull=True).order_by("pk").first()
    )


def _create_findings(read: Read, answers: dict[int, FindingAnswer]) -> None:
    ReadFinding.objects.bulk_create(
        ReadFinding(
            read=read,
            finding_type_id=pk,
            present=answer.present,
            confidence=answer.confidence,
            marks=answer.marks,
        )
        for pk, answer in answers.items()
    )


def _complete_session_if_done(session: ReadingSession, now: datetime) -> None:
    if Assignment.objects.filter(session_id=session.pk, reads__isnull=True).exists():
        return
    if not ReadingSession.objects.filter(pk=session.pk, completed_at__isnull=True).update(
        completed_at=now
    ):
        return
    if session.training:
        return  # training starts no washout clock
    following = (
        ReadingSession.objects.filter(
            study_id=session.study_id,
            reader_id=session.reader_id,
            training=False,
            number=session.number + 1,
            started_at__isnull=True,
            washout_waived=False,
        )
        .select_related("study")
        .order_by()
        .first()
    )
    if following is not None:
        earliest = now + timedelta(days=following.study.washout_days)
        if following.available_from is None or following.available_from < earliest:
            following.available_from = earliest
            following.save(update_fields=["available_from"])


def correct_read(
    *,
    read: Read,
    user: User,
    reason: str,
    findings: Any,
    free_text: str,
    finding_types: list[FindingType],
    image_sizes: dict[int, tuple[int, int]],
    idempotency_key: str,
    confirm_contradictions: bool = False,
    image_slices: dict[int, tuple[int, int]] | None = None,
) -> Read:
    """Record a correction: a new Read superseding ``read`` (the latest of its chain).

    The original stays as it was; the correction keeps the original's start time, its own
    submission time, the reason and who made it. Refused once the study is locked, and once
    the reader has opened any assignment of the same case in an arm that shows the AI (the
    crossover's assisted session, the sequential design's assisted step): after that, a changed
    answer could carry the AI's output. The contradiction rule applies as on submission.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidReadError("a correction needs a reason")
    if _has_nul([reason, free_text]):
        raise InvalidReadError("the reason and free text may not contain NUL characters")
    answers = parse_findings(finding_types, findings, image_sizes)
    check_marks(answers, image_sizes, image_slices)
    assignment = Assignment.objects.select_related("session").get(pk=read.assignment_id)
    if assignment.session.training:
        raise CorrectionRefusedError("a training read is not corrected: it is never analysed")
    with transaction.atomic():
        study = _lock_open_study(assignment.session.study_id)
        # Lock the reader's assisted assignments of the case, opened or not: an opening racing
        # this correction either commits first (and is seen here) or waits for it.
        assisted = list(
            selectors.ai_arm_assignments(reader_id=assignment.reader_id, case_id=assignment.case_id)
            .select_related("session")
            .select_for_update(of=("self",))
        )
        refusal = selectors.correction_refusal(study=study, assisted=assisted)
        if refusal is not None:
            raise CorrectionRefusedError(refusal)
        confirmed = _apply_contradiction_rule(
            study, answers, finding_types, confirmed=confirm_contradictions
        )
        latest = Read.objects.select_for_update().get(pk=read.pk)
        if Read.objects.filter(supersedes=latest).exists():
            raise InvalidReadError(
                "this read has already been corrected; correct the latest version"
            )
        correction = Read.objects.create(
            assignment_id=latest.assignment_id,
            supersedes=latest,
            correction_reason=reason,
            free_text=free_text if isinstance(free_text, str) else "",
            started_at=latest.started_at,
            submitted_at=timezone.now(),
            idempotency_key=idempotency_key,
            submitted_by=user,
            protocol_version=study.protocol_version,
            contradiction_confirmed=confirmed,
        )
        _create_findings(correction, answers)
        audit_record(
            actor=user,
            action=Action.READ_CORRECT,
            obj=correction,
            study=study,
            before={"read": latest.pk, "free_text": latest.free_text, "findings": _stored(latest)},
            after=_audit_view(correction, answers, finding_types),
            reason=reason,
        )
    return correction


def _audit_view(
    read: Read, answers: dict[int, FindingAnswer], finding_types: list[FindingType]
) -> dict[str, Any]:
    codes = {ft.pk: ft.code for ft in finding_types}
    return {
        "assignment": read.assignment_id,
        "started_at": read.started_at,
        "submitted_at": read.submitted_at,
        "free_text": read.free_text,
        "findings": {
            codes[pk]: {"present": a.present, "confidence": a.confidence, "marks": a.marks}
            for pk, a in answers.items()
        },
    }


def _stored(read: Read) -> dict[str, Any]:
    return {
        f.finding_type.code: {"present": f.present, "confidence": f.confidence, "marks": f.marks}
        for f in read.findings.select_related("finding_type")
    }
