"""The Celery application and the project's one task decorator.

Two queues: ``default`` for everything on CPU workers, ``inference`` for model pre-reads, which a
GPU worker consumes (``celery -A studyplatform worker -Q inference``). Tasks take primary keys as
keyword arguments, serialize as JSON, acknowledge late (a worker killed mid-task has its message
redelivered) and are enqueued only after the surrounding transaction commits (``enqueue``).

The broker can be down: a web request then neither waits for it (short connect timeouts, no
publish retries) nor fails (``enqueue`` logs the error). What such a lost message would have done
is healed on the worker's side: the beat schedule runs ``prereads.sweep`` every
PREREAD_SWEEP_INTERVAL seconds, which re-queues pre-reads left pending or stuck running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from celery import Celery, Task
from django.conf import settings
from django.db import transaction
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")

app = Celery("studyplatform", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
INFERENCE_QUEUE = "inference"
# No task may run longer than this (project_task refuses more). The Redis broker redelivers a
# message that was not acknowledged within its visibility timeout, so that timeout is set well
# above it: a long task is never handed to a second worker while it still runs.
MAX_TASK_TIME_LIMIT = 3600
VISIBILITY_TIMEOUT = 2 * MAX_TASK_TIME_LIMIT
# Seconds to open a broker connection: an enqueue during a broker outage fails fast.
BROKER_CONNECT_TIMEOUT = 2

app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue=DEFAULT_QUEUE,
    task_queues=(
        Queue(DEFAULT_QUEUE, Exchange(DEFAULT_QUEUE), routing_key=DEFAULT_QUEUE),
        Queue(INFERENCE_QUEUE, Exchange(INFERENCE_QUEUE), routing_key=INFERENCE_QUEUE),
    ),
    # Late acknowledgement plus one message per worker process: a killed worker's task goes
    # back to the queue instead of being lost with the prefetched messages.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    result_expires=7 * 24 * 3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # Publishing does not retry: the sweeper re-queues what a failed publish lost, and a web
    # request must not wait for a broker that is down.
    task_publish_retry=False,
    broker_connection_timeout=BROKER_CONNECT_TIMEOUT,
    broker_transport_options={
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT,
        "max_retries": 0,
    },
    redis_socket_connect_timeout=BROKER_CONNECT_TIMEOUT,
    beat_schedule={
        "prereads-sweep": {
            "task": "prereads.sweep",
            "schedule": float(settings.PREREAD_SWEEP_INTERVAL),
            "options": {"queue": DEFAULT_QUEUE, "expires": settings.PREREAD_SWEEP_INTERVAL},
        },
        "dashboard-expire-exports": {
            "task": "dashboard.expire_exports",
            "schedule": 3600.0,
            "options": {"queue": DEFAULT_QUEUE, "expires": 3600},
        },
    },
)
app.autodiscover_tasks()

P = ParamSpec("P")
R = TypeVar("R")


def project_task(
    *,
    queue: str = DEFAULT_QUEUE,
    time_limit: int = 3600,
    soft_time_limit: int | None = None,
    max_retries: int = 3,
    autoretry_for: tuple[type[BaseException], ...] = (),
    name: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Register a task with the project's defaults.

    ``autoretry_for`` lists transient errors (a dropped database connection, say) that are retried
    with exponential back-off; everything else fails the task at once with its error recorded.
    """

    if time_limit > MAX_TASK_TIME_LIMIT:
        raise ValueError(f"time_limit {time_limit} s is above MAX_TASK_TIME_LIMIT")

    def decorate(function: Callable[P, R]) -> Task[P, R]:
        task: Task[P, R] = app.task(
            name=name or f"{function.__module__}.{function.__qualname__}",
            queue=queue,
            acks_late=True,
            reject_on_worker_lost=True,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit or max(1, time_limit - 30),
            serializer="json",
            max_retries=max_retries,
            autoretry_for=autoretry_for,
            retry_backoff=True,
            retry_backoff_max=300,
            retry_jitter=True,
        )(function)
        return task

    return decorate


def enqueue(task: Task[..., Any], **kwargs: Any) -> None:
    """Send ``task`` with keyword arguments once the current transaction commits.

    Outside a transaction it is sent at once. Enqueueing after commit means a worker never
    receives the ID of a row that it cannot see yet, or that a rollback removed. A broker that
    cannot be reached is logged, not raised: what was committed stays committed, and the caller
    (a web request, often) is answered; pre-reads so left unqueued are re-queued by the sweeper.
    """
    transaction.on_commit(lambda: send(task, **kwargs))


def send(task: Task[..., Any], **kwargs: Any) -> bool:
    """Publish now; False (and an error in the log) when the broker cannot take the message."""
    try:
        # Nobody waits for the result of a queued task (its outcome is in the database), and
        # not subscribing to it keeps the result store, down with the broker, out of the way.
        task.apply_async(kwargs=kwargs, ignore_result=True)
    except Exception:  # any broker or network error: the message is lost, the caller is not
        logger.exception("could not queue %s with %s: the broker is unreachable", task.name, kwargs)
        return False
    return True


@project_task(name="studyplatform.diagnostic", time_limit=60)
def diagnostic(*, token: str) -> dict[str, Any]:
    """Echo a token with facts about the worker that ran it: a round-trip health check.

    It reads the database too, so an answer proves the worker sees the same data as the web app.
    """
    from django.db import connection

    from studyplatform.studies.models import Study

    return {
        "token": token,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "database": connection.vendor,
        "studies": Study.objects.count(),
    }
