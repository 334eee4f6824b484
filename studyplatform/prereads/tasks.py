"""Pre-read tasks on the ``inference`` queue (a GPU worker consumes it when there is one).

torch is imported inside the task, so a web process that only enqueues never loads it.
"""

from __future__ import annotations

from typing import Any

from celery import current_task
from celery.signals import worker_init
from django.conf import settings
from django.db import InterfaceError, OperationalError

from studyplatform.celery import INFERENCE_QUEUE, project_task
from studyplatform.prereads.services import TransientInferenceError, sweep_prereads

# A dropped or locked database connection and a full GPU memory pass with time; everything else (a
# corrupt image, a refused model) is recorded on the pre-read as failed instead of retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    TransientInferenceError,
)


@worker_init.connect
def _record_worker_processes(sender: Any = None, **_: Any) -> None:
    """Runs in the worker's parent before the pool forks: children split the cores evenly."""
    concurrency = getattr(sender, "concurrency", None)
    if isinstance(concurrency, int) and concurrency > 0:
        from studyplatform.prereads import inference  # torch, in the worker only

        inference.set_worker_processes(concurrency)


@project_task(
    queue=INFERENCE_QUEUE,
    autoretry_for=TRANSIENT_ERRORS,
    time_limit=1800,
    name="prereads.run_batch",
)
def run_preread_batch(*, preread_ids: list[int], chunk_size: int | None = None) -> dict[str, Any]:
    """Compute a batch of pre-reads; safe to run twice (done cases are skipped)."""
    from studyplatform.prereads.runner import run_batch  # torch, in the worker only

    # The message's ID names the claim: a redelivered message takes its rows back at once.
    request = getattr(current_task, "request", None)
    claim = getattr(request, "id", None)
    return run_batch(preread_ids=preread_ids, chunk_size=chunk_size, claim=claim).as_json()


@project_task(time_limit=300, name="prereads.sweep")
def sweep_lost_prereads() -> dict[str, int]:
    """The beat's sweeper: re-queue lost pre-reads and return those of dead runs (services)."""
    return sweep_prereads(
        requeue_after=settings.PREREAD_REQUEUE_AFTER, stale_after=settings.PREREAD_STALE_AFTER
    ).as_json()
