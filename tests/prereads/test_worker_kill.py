"""A worker process killed in the middle of a batch loses no case and duplicates none.

A real worker (prefork pool) runs a batch through a deliberately slow plug-in model; once some of
the batch's cases are done, the pool process running it is killed with SIGKILL, as the kernel's
out-of-memory killer would. Late acknowledgement plus reject-on-worker-lost put the message back
on the queue, a new worker process takes it, skips the cases already done and finishes the rest.
Runs on SQLite with the embedded broker locally, and on PostgreSQL and Redis where the
environment names them (CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studyplatform.prereads.inference import torch_threads_for
from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from tests.prereads.conftest import make_study, register_random_model
from tests.services import ROOT, celery_worker, current_database_url, require, service_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

N_CASES = 6


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def wait_for(condition, *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")
        time.sleep(0.1)


def done_count(study) -> int:
    return PreRead.objects.filter(case__study=study, status=PreReadStatus.DONE).count()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the pool process through /proc")
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_batch_loses_no_case_and_duplicates_none(tmp_path):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker:
        require(broker, "the broker")
    study = make_study(N_CASES, size=128, slug="kill-test")
    model = register_random_model(
        tmp_path, name="slow-cnn", factory="tests.prereads.slow_model:build"
    )
    env = service_env(tmp_path, DATABASE_URL=current_database_url())
    log = tmp_path / "worker.log"

    with celery_worker(env, queues="inference", log=log) as worker:
        command_log = (tmp_path / "preread.log").open("wb")
        # One message holding the whole batch; each case is committed on its own.
        command = subprocess.Popen(
            [sys.executable, "manage.py", "preread", study.slug, "--model", model.name,
             "--batch-size", str(N_CASES), "--chunk-size", "1", "--timeout", "150"],
            cwd=ROOT, env=env, stdout=command_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: done_count(study) >= 2, timeout=120, what="2 cases done", log=log)
            [pool_process] = pool_children(worker.pid)
            os.kill(pool_process, signal.SIGKILL)
            killed_after = done_count(study)
            assert killed_after < N_CASES, "the batch finished before the kill"
            assert command.wait(timeout=150) == 0, (tmp_path / "preread.log").read_text()
        finally:
            if command.poll() is None:
                command.kill()
            command_log.close()
        assert pool_children(worker.pid) != [pool_process]  # a new process finished the batch

    prereads = list(PreRead.objects.filter(case__study=study))
    assert len(prereads) == N_CASES
    assert {p.status for p in prereads} == {PreReadStatus.DONE}, [p.error for p in prereads]
    assert PreReadFinding.objects.filter(preread__in=prereads).count() == 3 * N_CASES
    attempts = sorted(p.attempts for p in prereads)
    # Cases done before the kill were not redone; the others ran once more.
    assert attempts.count(1) >= killed_after and max(attempts) == 2
    heatmaps = list((tmp_path / "media").rglob("prereads/*/*.png"))
    assert len(heatmaps) == N_CASES
    text = log.read_text()
    assert "WorkerLostError" in text or "SIGKILL" in text
    # One pool process (-c 1): every core but the one left to its decode/encode thread.
    threads = torch_threads_for(len(os.sched_getaffinity(0)), 1)
    assert f"with {threads} torch threads" in text
