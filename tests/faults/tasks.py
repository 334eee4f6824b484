"""A test-only task for the fault tests: it leaves a trace of every start and every finish.

The worker imports it with ``--include tests.faults.tasks``. The task is idempotent in the way
the project's tasks are: a run that finds the work done does nothing (a redelivered message after
the work was committed), so it finishes exactly once however often it is delivered.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from studyplatform.celery import project_task


@project_task(name="tests.faults.traced_work", time_limit=120)
def traced_work(*, folder: str, seconds: float) -> str:
    root = Path(folder)
    (root / f"start-{os.getpid()}-{time.monotonic_ns()}").touch()
    done = root / "done"
    if done.exists():
        return "already done"
    time.sleep(seconds)  # the window in which the test kills the process
    with (root / "finishes").open("a") as sink:
        sink.write(f"{os.getpid()}\n")
    done.touch()
    return "done"
