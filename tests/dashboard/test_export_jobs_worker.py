"""The DICOM export asked for in the dashboard travels through a real broker to a real worker
process, which writes the zip under MEDIA_ROOT; the dashboard then downloads it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from django.urls import reverse

from studyplatform.celery import app
from studyplatform.dashboard.models import ExportJob
from tests.dashboard.dicom_builders import build_dicom_study
from tests.services import celery_worker, current_database_url, require, service_env

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_the_worker_builds_the_asked_export_and_the_dashboard_serves_it(
    client, settings, tmp_path: Path
):
    url = str(app.conf.broker_url)  # the broker this process publishes to
    if not url.startswith("redis"):
        pytest.skip(f"needs a Redis broker that the worker shares (CELERY_BROKER_URL is {url})")
    require(url, "redis")
    built = build_dicom_study(tmp_path)
    env = service_env(
        tmp_path / "var",
        DATABASE_URL=current_database_url(),
        CELERY_BROKER_URL=url,
        CELERY_RESULT_BACKEND=None,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    log = tmp_path / "worker.log"
    with celery_worker(env, queues="default", log=log):
        client.force_login(built.statistician)
        response = client.post(reverse("dashboard:export", args=["dcm"]), {"format": "sr"})
        assert response.status_code == 302
        job = ExportJob.objects.get()
        deadline = time.monotonic() + 60
        while job.status not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            job.refresh_from_db()
    assert job.status == "done", f"{job.status} {job.error}\nworker log:\n{log.read_text()}"
    response = client.get(reverse("dashboard:export_download", args=["dcm", job.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == job.sha256 and body[:2] == b"PK"
    assert (Path(settings.MEDIA_ROOT) / job.path).is_file()
