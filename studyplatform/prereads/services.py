"""Pre-read use cases: request pre-reads for cases, and run a batch of them.

Exactly one PreRead per (case, model) exists (a unique constraint) and a done one is never
redone, so requesting twice, a redelivered message, or two workers on the same batch add nothing.
Running a batch is in ``runner`` (which imports torch); this module stays free of it, so the web
app can request pre-reads without loading torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from studyplatform.celery import enqueue
from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.studies.models import Case, Study

logger = logging.getLogger(__name__)

BATCH_SIZE = 32  # cases per task message: fewer messages, longer pipelines (benchmarks/README.md)
STAGES = ("decode", "preprocess", "forward", "gradcam", "encode", "database")


def batched(items: Iterable[int], size: int) -> Iterable[list[int]]:
    """Consecutive lists of ``size`` items (the last may be shorter); itertools has it in 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def default_model() -> AIModel | None:
    """The most recently registered model: what a study is pre-read with unless told otherwise."""
    return AIModel.objects.order_by("-registered_at", "-pk").first()


def _cases(*, study: Study | None, case_ids: Iterable[int] | None) -> QuerySet[Case]:
    if study is None and case_ids is None:
        raise ValueError("give a study, case IDs, or both")
    cases = Case.objects.all()
    if study is not None:
        cases = cases.filter(study=study)
    if case_ids is not None:
        cases = cases.filter(pk__in=list(case_ids))
    return cases


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

    ``case_ids`` are Case primary keys. Pre-reads already done are left alone; failed ones are
    tried again. Returns how many were queued (0 when no model is registered yet).
    """
    model = model or default_model()
    if model is None:
        logger.warning("no AI model is registered: no pre-reads requested")
        return 0
    with transaction.atomic():
        todo = _ensure_prereads(cases=_cases(study=study, case_ids=case_ids), model=model)
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
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, other: BatchOutcome) -> None:
        self.done += other.done
        self.failed += other.failed
        self.skipped += other.skipped
        for stage, ms in other.stage_ms.items():
            self.stage_ms[stage] += ms

    def as_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
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
    """Run the pre-reads in this process, batch by batch (the demo and ``preread --sync``)."""
    model = model or default_model()
    total = BatchOutcome()
    if model is None:
        return total
    with transaction.atomic():
        todo = _ensure_prereads(cases=_cases(study=study, case_ids=case_ids), model=model)
    from studyplatform.prereads.runner import run_batch  # torch: loaded only where it runs

    for batch in batched(todo, max(1, batch_size)):
        total.add(run_batch(preread_ids=batch, chunk_size=chunk_size))
        if progress is not None:
            progress(total)
    return total


def run_demo_prereads(*, study: Study) -> BatchOutcome:
    """Register the shipped demo model (once) and pre-read ``study`` with it in this process."""
    from studyplatform.prereads.registry import register_demo_model  # registry imports models

    return run_prereads_now(study=study, model=register_demo_model())
