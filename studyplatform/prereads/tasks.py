"""Pre-read tasks on the ``inference`` queue (a GPU worker consumes it when there is one)."""

from __future__ import annotations

from typing import Any

import torch
from celery.signals import worker_init
from django.db import InterfaceError, OperationalError

from studyplatform.celery import INFERENCE_QUEUE, project_task
from studyplatform.prereads import inference, services

# A dropped or locked database connection and a full GPU pass with time; everything else (a
# corrupt image, a refused model) is recorded on the pre-read as failed instead of retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    torch.cuda.OutOfMemoryError,
)


@worker_init.connect
def _record_worker_processes(sender: Any = None, **_: Any) -> None:
    """Runs in the worker's parent before the pool forks: children split the cores evenly."""
    concurrency = getattr(sender, "concurrency", None)
    if isinstance(concurrency, int) and concurrency > 0:
        inference.set_worker_processes(concurrency)


@project_task(
    queue=INFERENCE_QUEUE,
    autoretry_for=TRANSIENT_ERRORS,
    time_limit=1800,
    name="prereads.run_batch",
)
def run_preread_batch(*, preread_ids: list[int], chunk_size: int | None = None) -> dict[str, Any]:
    """Compute a batch of pre-reads; safe to run twice (done cases are skipped)."""
    return services.run_batch(preread_ids=preread_ids, chunk_size=chunk_size).as_json()
