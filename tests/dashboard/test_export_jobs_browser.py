"""The dashboard follows a DICOM export job in Chromium: its progress bar moves while the worker
builds the zip, and the page shows the download link by itself when the job is done."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from studyplatform.dashboard.models import ExportJob
from studyplatform.dashboard.tasks import build_export_job
from tests.dashboard.dicom_builders import build_dicom_study

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_follows_a_job_to_its_download_link(live_server, page, tmp_path: Path):
    built = build_dicom_study(tmp_path)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/login/?next=/dashboard/dcm/")
    page.fill("#id_username", built.statistician.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")
    page.wait_for_selector("#exports")
    page.click("#exports button:text('DICOM SR (zip)')")
    row = page.locator("#export-jobs tr.export-job")
    row.wait_for()
    assert row.get_attribute("data-status") == "queued"  # no worker in this test: it waits
    job = ExportJob.objects.get()
    # The worker takes the job: the open page moves its bar without a reload.
    ExportJob.objects.filter(pk=job.pk).update(status="running", progress=35)
    page.wait_for_function(
        "() => document.querySelector('#export-jobs .job-progress').textContent === '35%'"
    )
    assert page.locator("#export-jobs .job-status").inner_text() == "running"
    # It finishes: the page reloads by itself and offers the file.
    ExportJob.objects.filter(pk=job.pk).update(status="queued", progress=0)
    assert build_export_job(job_id=job.pk) == "done"
    link = page.locator("#export-jobs a:text('download')")
    link.wait_for(timeout=15_000)
    href = link.get_attribute("href")
    assert href == reverse("dashboard:export_download", args=["dcm", job.pk])
    assert errors == []
