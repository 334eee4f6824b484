"""A Celery worker process killed in the middle of a task: the task is redelivered, finishes once.

The pool process running the task is killed with SIGKILL, as the kernel's out-of-memory killer
would. Late acknowledgement plus reject-on-worker-lost (studyplatform.celery) put the message
back on the queue; the worker's next pool process runs it again (after Celery's
``worker_lost_wait``, 10 s), and the task finishes exactly once. The embedded broker locally;
the broker CELERY_BROKER_URL names where it is set (CI: Redis).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.services import celery_worker, manage, require, service_env

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the pool process through /proc"),
]


def _pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _wait_for(condition, *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")
        time.sleep(0.1)


def test_killed_worker_process_task_is_redelivered_and_finishes_once(tmp_path):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker:
        require(broker, "the broker")
    trace = tmp_path / "trace"
    trace.mkdir()
    env = service_env(tmp_path / "var", CELERY_RESULT_BACKEND=None)
    log = tmp_path / "worker.log"

    with celery_worker(env, queues="default", log=log, include=("tests.faults.tasks",)) as worker:
        manage(
            env,
            "shell",
            "-c",
            "from tests.faults.tasks import traced_work; "
            f"traced_work.apply_async(kwargs={{'folder': {str(trace)!r}, 'seconds': 1.5}})",
        )
        starts = lambda: sorted(trace.glob("start-*"))  # noqa: E731
        _wait_for(lambda: len(starts()) == 1, timeout=60, what="the task to start", log=log)
        [pool_process] = _pool_children(worker.pid)
        os.kill(pool_process, signal.SIGKILL)

        finishes = trace / "finishes"
        _wait_for(finishes.exists, timeout=60, what="the redelivered task to finish", log=log)
        time.sleep(1.0)  # a third delivery, if any, would start within this

    assert len(starts()) == 2, "the killed task ran again exactly once"
    pids = finishes.read_text().split()
    assert len(pids) == 1 and int(pids[0]) != pool_process
    text = log.read_text()
    assert "WorkerLostError" in text or "SIGKILL" in text
    assert "succeeded" in text
