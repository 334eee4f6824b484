"""Reader training: a reader's training session, and a coordinator's waiver of it.

A study's training cases (``Case.training``) are read by each enrolled reader in the real viewer,
in every arm's presentation in the study's arm order (unassisted, then assisted with the AI
panel), as one training session that is never part of the allocation and never analysed. The
reader's analysed sessions open only once it is complete, or once a coordinator waived it with
a reason (audited): the gate is in the reading write path (``reads._require_trained``).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.reading.models import Assignment, Enrolment, Reader, ReadingSession
from studyplatform.reading.services.errors import ReadingError
from studyplatform.reading.services.washout import may_waive, readable_state
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Study

__all__ = ["TrainingError", "start_training", "waive_training"]


class TrainingError(ReadingError):
    """The training cannot be started or waived as asked; the message says why."""


def start_training(*, study: Study, reader: Reader) -> ReadingSession:
    """The reader's training session in ``study``, created with its assignments on first call.

    One assignment per training case and arm: the case at one position, one step per arm in
    the study's arm order. Idempotent: a second call returns the stored session unchanged.
    Refused when the reader is not enrolled, the study has no training cases, or the study is
    neither a draft nor open (a locked study refuses every change).
    """
    with transaction.atomic():
        study = lock_study_for_write(study)
        if not Enrolment.objects.filter(study=study, reader=reader).exists():
            raise TrainingError(f"reader {reader.code} is not enrolled in study {study.slug}")
        if not readable_state(study, training=True):
            raise TrainingError(f"study {study.slug} is {study.state}: no training now")
        stored = ReadingSession.objects.filter(study=study, reader=reader, training=True).first()
        if stored is not None:
            return stored
        cases = list(study.cases.filter(training=True).order_by("case_id"))
        if not cases:
            raise TrainingError(f"study {study.slug} has no training cases")
        arms = list(study.arms.order_by("order", "name"))
        session = ReadingSession.objects.create(study=study, reader=reader, number=1, training=True)
        Assignment.objects.bulk_create(
            Assignment(
                session=session,
                reader=reader,
                case=case,
                arm=arm,
                position=position,
                step=step,
            )
            for position, case in enumerate(cases, start=1)
            for step, arm in enumerate(arms, start=1)
        )
        audit_record(
            actor=reader.user,
            action=Action.TRAINING_START,
            obj=session,
            study=study,
            after={
                "reader": reader.code,
                "cases": [case.case_id for case in cases],
                "arms": [arm.name for arm in arms],
            },
        )
    return session


def waive_training(*, study: Study, reader: Reader, user: User, reason: str) -> Enrolment:
    """Waive ``reader``'s training in ``study``: the analysed sessions open without it.

    For a coordinator of the study or a superuser, with a reason; audited. Refused when the
    reader is not enrolled, or the training was waived already.
    """
    reason = reason.strip()
    if not reason:
        raise TrainingError("a training waiver needs a reason (it is recorded and shown)")
    if not may_waive(user, study):
        raise PermissionDenied(
            f"only a coordinator of study {study.slug!r} or a superuser may waive training"
        )
    now = timezone.now()
    with transaction.atomic():
        study = lock_study_for_write(study)
        enrolment = (
            Enrolment.objects.select_for_update(of=("self",))
            .select_related("reader", "training_waived_by")
            .filter(study=study, reader=reader)
            .first()
        )
        if enrolment is None:
            raise TrainingError(f"reader {reader.code} is not enrolled in study {study.slug}")
        if enrolment.training_waived_at is not None:
            raise TrainingError(
                f"the training of {reader.code} was waived already "
                f"(by {enrolment.training_waived_by}: {enrolment.training_waiver_reason})"
            )
        enrolment.training_waived_at = now
        enrolment.training_waived_by = user
        enrolment.training_waiver_reason = reason
        enrolment.save(
            update_fields=["training_waived_at", "training_waived_by", "training_waiver_reason"]
        )
        audit_record(
            actor=user,
            action=Action.TRAINING_WAIVE,
            obj=enrolment,
            study=study,
            before={"training_waived": False},
            after={"training_waived": True, "reader": reader.code, "waived_at": now},
            reason=reason,
        )
    return enrolment
