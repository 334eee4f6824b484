"""Pre-reads heal without anyone rerunning a command: a whole worker killed, the broker stopped.

Each test runs its own throwaway redis-server on a free port (never the shared one), real worker
processes with the beat (``-B``) and a short sweep interval, and checks every case pre-read once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.test import Client

from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.studies.models import Study
from studyplatform.studies.services import issue_site_token
from tests.factories import SiteFactory
from tests.prereads.conftest import make_study, register_random_model
from tests.services import (
    ROOT,
    current_database_url,
    service_env,
    stop_process_group,
    web_broker,
)
from tests.studies.import_fixtures import pydicom_file

pytestmark = [pytest.mark.services, pytest.mark.slow]

HEALING = {"PREREAD_SWEEP_INTERVAL": "1", "PREREAD_REQUEUE_AFTER": "4", "PREREAD_STALE_AFTER": "4"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server(port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A throwaway Redis without persistence: stopping it loses every queued message."""
    if not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            raise AssertionError("the throwaway redis-server did not start")
        time.sleep(0.05)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def start_worker(env: dict[str, str], log: Path, *, beat: bool) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studyplatform", "worker",
             "-Q", "default,inference", "-c", "1", "--pool", "prefork", "-l", "INFO",
             "--without-gossip", "--without-mingle", "-n", f"heal-{os.getpid()}-{beat}@%h",
             *(["-B", "-s", str(log.parent / "beat-schedule")] if beat else [])],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")
        time.sleep(0.2)


def done(study: Study) -> int:
    return PreRead.objects.filter(case__study=study, status=PreReadStatus.DONE).count()


def assert_each_case_preread_once(study: Study, n_cases: int, media: Path) -> None:
    prereads = list(PreRead.objects.filter(case__study=study))
    assert len(prereads) == n_cases
    assert {p.status for p in prereads} == {PreReadStatus.DONE}, [p.error for p in prereads]
    findings = study.finding_types.count()
    assert PreReadFinding.objects.filter(preread__in=prereads).count() == findings * n_cases
    assert len(list(media.rglob(f"studies/{study.pk}/prereads/*/*.png"))) == n_cases


@pytest.mark.django_db(transaction=True)
def test_a_whole_worker_killed_mid_batch_is_healed_by_the_beat(tmp_path):
    n_cases = 6
    study = make_study(n_cases, size=128, slug="heal-kill")
    model = register_random_model(
        tmp_path, name="slow-cnn", factory="tests.prereads.slow_model:build"
    )
    port = _free_port()
    with redis_server(port, tmp_path):
        env = service_env(
            tmp_path,
            DATABASE_URL=current_database_url(),
            CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0",
            **HEALING,
        )
        log = tmp_path / "worker.log"
        first = start_worker(env, log, beat=False)
        try:
            subprocess.run(
                [sys.executable, "manage.py", "preread", study.slug, "--model", model.name,
                 "--batch-size", str(n_cases), "--chunk-size", "1", "--no-wait"],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
            wait_for(lambda: done(study) >= 2, timeout=120, what="2 cases done", log=log)
            os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool, at once
            first.wait(timeout=10)
        finally:
            stop_process_group(first)
        killed_after = done(study)
        assert killed_after < n_cases, "the batch finished before the kill"
        assert PreRead.objects.filter(case__study=study, status=PreReadStatus.RUNNING).exists()
        # The message stays unacknowledged for the visibility timeout (hours): only the beat's
        # sweeper, seeing no heartbeat, can bring the running cases back.
        second = start_worker(env, log, beat=True)
        try:
            wait_for(lambda: done(study) == n_cases, timeout=180, what="every case", log=log)
        finally:
            stop_process_group(second)
    assert_each_case_preread_once(study, n_cases, tmp_path / "media")
    attempts = sorted(PreRead.objects.filter(case__study=study).values_list("attempts", flat=True))
    assert attempts.count(1) >= killed_after and max(attempts) == 2


def _arrive(client: Client, study: Study, token: str, case_id: str) -> float:
    started = time.monotonic()
    with pydicom_file("MR_small.dcm").open("rb") as image:
        response = client.post(
            f"/api/studies/{study.slug}/cases/",
            {"metadata": json.dumps({"case_id": case_id}), "images": [image]},
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
    assert response.status_code == 201, response.content
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_cases_arriving_while_redis_is_down_are_preread_once_when_it_returns(tmp_path):
    study = make_study(0, slug="heal-redis", model=register_random_model(tmp_path))
    token = issue_site_token(study=study, site=SiteFactory(code="north"), name="PACS")
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    env = service_env(
        tmp_path, DATABASE_URL=current_database_url(), CELERY_BROKER_URL=broker, **HEALING
    )
    log = tmp_path / "worker.log"
    client = Client()
    worker: subprocess.Popen[bytes] | None = None
    try:
        with web_broker(broker):
            with redis_server(port, tmp_path):
                worker = start_worker(env, log, beat=True)
                for n in range(3):
                    _arrive(client, study, token, f"UP-{n}")
            # Redis is stopped, and whatever it held is lost, while cases keep arriving.
            seconds = [_arrive(client, study, token, f"DOWN-{n}") for n in range(3)]
            assert max(seconds) < 10, seconds  # answered, not waiting for the broker
            with redis_server(port, tmp_path):
                wait_for(lambda: done(study) == 6, timeout=240, what="every case", log=log)
    finally:
        if worker is not None:
            stop_process_group(worker)
    assert_each_case_preread_once(study, 6, tmp_path / "media")
