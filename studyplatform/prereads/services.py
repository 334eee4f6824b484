"""Pre-read use cases: pin a study's model, request pre-reads for cases, run a batch of them.

Exactly one PreRead per (case, model) exists (a unique constraint) and a done one is never
redone, so requesting twice, a redelivered message, or two workers on the same batch add nothing.
Running a batch is in ``runner`` (which imports torch); this module stays free of it, so the web
app can request pre-reads without loading torch.

A study is pre-read with its pinned model unless another model is named (for comparison: readers
and the analysis never see that model's output). A locked study takes no pre-reads: every write
here and in ``runner`` holds ``lock_study_for_write`` in its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.celery import enqueue
from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.prereads.selectors import pinned_model
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Case, Study

logger = logging.getLogger(__name__)

BATCH_SIZE = 32  # cases per task message: fewer messages, longer pipelines (benchmarks/README.md)
STAGES = ("decode", "preprocess", "forward", "gradcam", "encode", "database")


def batched(items: Iterable[int], size: int) -> Iterable[list[int]]:
    """Consecutive lists of ``size`` items (the last may be shorter); itertools has it in 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


_PIN_FIELDS = ("ai_model_name", "ai_model_version", "ai_model_sha256")


def pin_model(
    *, study: Study, model: AIModel | None, actor: AbstractBaseUser | None = None
) -> Study:
    """Pin ``model`` as the study's AI model (None: unpin), copying its registered sha256.

    Part of the protocol: refused once the study has opened (ProtocolFrozenError) or is locked.
    Audited when it changes anything; updates ``study`` in place and returns it.
    """
    with transaction.atomic():
        current = lock_study_for_write(study, protocol=True)
        before = {name: getattr(current, name) for name in _PIN_FIELDS}
        after = dict.fromkeys(_PIN_FIELDS, "")
        if model is not None:
            after = dict(zip(_PIN_FIELDS, (model.name, model.version, model.sha256), strict=True))
        if after != before:
            for name, value in after.items():
                setattr(current, name, value)
            current.save(update_fields=list(_PIN_FIELDS))
            record(
                actor=actor,
                action=Action.STUDY_UPDATE,
                obj=current,
                study=current,
                before=before,
                after=after,
                reason="AI model pinned" if model is not None else "AI model unpinned",
            )
    for name, value in after.items():
        setattr(study, name, value)
    return study


def _cases(*, study: Study | None, case_ids: Iterable[int] | None) -> QuerySet[Case]:
    if study is None and case_ids is None:
        raise ValueError("give a study, case IDs, or both")
    cases = Case.objects.all()
    if study is not None:
        cases = cases.filter(study=study)
    if case_ids is not None:
        cases = cases.filter(pk__in=list(case_ids))
    return cases


def _study_ids(*, study: Study | None, cases: QuerySet[Case]) -> list[int]:
    if study is not None:
        return [study.pk]
    return sorted(set(cases.values_list("study_id", flat=True)))


def _lock_and_ensure(
    *, study: Study | None, case_ids: Iterable[int] | None, model: AIModel | None
) -> list[int]:
    """In the caller's transaction: refuse a locked study, create the pre-reads, return the todo.

    Each study's cases are pre-read by ``model``, else by the study's pinned model; a study
    that pins none is skipped with a warning.
    """
    cases = _cases(study=study, case_ids=case_ids)
    todo: list[int] = []
    for study_id in _study_ids(study=study, cases=cases):
        locked = lock_study_for_write(study_id)  # a locked study: StudyLockedError
        use = model or pinned_model(locked)
        if use is None:
            logger.warning("study %s pins no AI model: no pre-reads requested", locked.slug)
            continue
        todo += _ensure_prereads(cases=cases.filter(study_id=study_id), model=use)
    return todo


def _ensure_prereads(*, cases: QuerySet[Case], model: AIModel) -> list[int]:
    """Create the missing pre-reads, reopen failed ones, return the IDs of those not done."""
    have = set(
        PreRead.objects.filter(model=model, case__in=cases).values_list("case_id", flat=True)
    )
    PreRead.objects.bulk_create(
        [
            PreRead(case_id=pk, model=model)
            for pk in cases.values_list("pk", flat=True)
            if pk not in have
        ],
        ignore_conflicts=True,  # a concurrent request created it first: fine, it exists once
    )
    todo = PreRead.objects.filter(model=model, case__in=cases).exclude(status=PreReadStatus.DONE)
    todo.filter(status=PreReadStatus.FAILED).update(status=PreReadStatus.PENDING, error="")
    return list(todo.order_by("case__study_id", "case__case_id").values_list("pk", flat=True))


def request_prereads(
    *,
    study: Study | None = None,
    case_ids: Iterable[int] | None = None,
    model: AIModel | None = None,
    batch_size: int = BATCH_SIZE,
    chunk_size: int | None = None,
) -> int:
    """Create pending pre-reads and queue them in batches on the inference queue after commit.

    ``case_ids`` are Case primary keys. ``model`` defaults to each study's pinned model (a study
    that pins none gets nothing). Pre-reads already done are left alone; failed ones are tried
    again. Returns how many were queued. A locked study is refused (StudyLockedError).
    """
    with transaction.atomic():
        todo = _lock_and_ensure(study=study, case_ids=case_ids, model=model)
        _queue(todo, batch_size=batch_size, chunk_size=chunk_size)
    return len(todo)


def _queue(preread_ids: list[int], *, batch_size: int, chunk_size: int | None = None) -> None:
    """Stamp the rows as queued now and send their batches after commit."""
    from studyplatform.prereads.tasks import run_preread_batch  # the task module imports us

    PreRead.objects.filter(pk__in=preread_ids, status=PreReadStatus.PENDING).update(
        queued_at=timezone.now()
    )
    for batch in batched(preread_ids, max(1, batch_size)):
        enqueue(run_preread_batch, preread_ids=batch, chunk_size=chunk_size)


@dataclass(frozen=True)
class SweepOutcome:
    returned: int  # running pre-reads whose run stopped beating, back to pending
    requeued: int  # pending pre-reads queued again

    def as_json(self) -> dict[str, int]:
        return {"returned": self.returned, "requeued": self.requeued}


def sweep_prereads(
    *, requeue_after: int, stale_after: int, batch_size: int = BATCH_SIZE
) -> SweepOutcome:
    """Heal what a lost message or a dead worker left behind; safe to run at any time.

    A pre-read running without a heartbeat for ``stale_after`` seconds goes back to pending (its
    worker died; a broker that keeps its unacknowledged message would hand it out only after the
    visibility timeout). A pending one queued more than ``requeue_after`` seconds ago is queued
    again (its message never reached the broker, or was lost with it). The rows are claimed
    under a lock that concurrent sweeps skip, and a queued message that does arrive late finds
    them done or held by a live run: each case is pre-read once.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=stale_after)
    with transaction.atomic():
        dead = list(
            PreRead.objects.select_for_update(skip_locked=True)
            .filter(status=PreReadStatus.RUNNING)
            .filter(
                Q(heartbeat_at__lte=stale) | Q(heartbeat_at__isnull=True, started_at__lte=stale)
            )
            .values_list("pk", flat=True)
        )
        PreRead.objects.filter(pk__in=dead).update(status=PreReadStatus.PENDING, claim="")
        lost = list(
            PreRead.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=PreReadStatus.PENDING)
            .filter(Q(pk__in=dead) | Q(queued_at__lte=now - timedelta(seconds=requeue_after)))
            .order_by("case__study_id", "case__case_id")
            .values_list("pk", flat=True)
        )
        _queue(lost, batch_size=batch_size)
    if dead or lost:
        logger.warning(
            "pre-read sweep: %d returned from dead runs, %d re-queued", len(dead), len(lost)
        )
    return SweepOutcome(returned=len(dead), requeued=len(lost))


class TransientInferenceError(Exception):
    """A failure worth retrying later (the GPU's memory was full, say); the task retries it."""


@dataclass
class BatchOutcome:
    """What one run did, with the time spent per stage summed over its cases (milliseconds)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    refused: int = 0  # cases of a study locked since they were queued: nothing stored
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, other: BatchOutcome) -> None:
        self.done += other.done
        self.failed += other.failed
        self.skipped += other.skipped
        self.refused += other.refused
        for stage, ms in other.stage_ms.items():
            self.stage_ms[stage] += ms

    def as_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "refused": self.refused,
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
        }


def run_prereads_now(
    *,
    study: Study | None = None,
    case_ids: Iterable[int] | None = None,
    model: AIModel | None = None,
    batch_size: int = BATCH_SIZE,
    chunk_size: int | None = None,
    progress: Callable[[BatchOutcome], None] | None = None,
) -> BatchOutcome:
    """Run the pre-reads in this process, batch by batch (the demo and ``preread --sync``).

    The same defaults and refusals as :func:`request_prereads`.
    """
    total = BatchOutcome()
    with transaction.atomic():
        todo = _lock_and_ensure(study=study, case_ids=case_ids, model=model)
    from studyplatform.prereads.runner import run_batch  # torch: loaded only where it runs

    for batch in batched(todo, max(1, batch_size)):
        total.add(run_batch(preread_ids=batch, chunk_size=chunk_size))
        if progress is not None:
            progress(total)
    return total


def run_demo_prereads(*, study: Study, ct: bool = False) -> BatchOutcome:
    """Register the shipped demo model (once), pin it, and pre-read ``study`` in this process.

    ``ct``: the CT demo model (a slice-wise nodule detector) instead of the radiograph one.
    """
    from studyplatform.prereads.registry import (  # the registry imports torch
        register_demo_ct_model,
        register_demo_model,
    )

    pin_model(study=study, model=register_demo_ct_model() if ct else register_demo_model())
    return run_prereads_now(study=study)
