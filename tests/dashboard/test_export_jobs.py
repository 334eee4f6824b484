"""The DICOM export (``sr``) from the dashboard: asked for by the export form, built by the worker
task into a file under MEDIA_ROOT, listed on the dashboard and downloaded with the export
form's access rules and audit record.

The task runs as a worker runs it, called with the job ID its message carries (twice where it
matters); tests/dashboard/test_export_jobs_worker.py sends it through a real broker and worker.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from studyplatform.accounts.roles import STATISTICIAN
from studyplatform.audit.models import AuditEvent
from studyplatform.dashboard.models import ExportJob
from studyplatform.dashboard.tasks import build_export_job, expire_export_files
from studyplatform.reading.models import Reader
from studyplatform.studies.models import MemberRole, StudyMembership
from tests.dashboard.dicom_builders import DicomStudy, build_dicom_study
from tests.factories import StudyFactory, TruthFactory, UserFactory

pytestmark = pytest.mark.django_db

STUDY = "dcm"


@pytest.fixture
def built(tmp_path: Path) -> DicomStudy:
    return build_dicom_study(tmp_path)


def _ask(client, user, fmt: str = "sr"):
    client.force_login(user)
    return client.post(reverse("dashboard:export", args=[STUDY]), {"format": fmt})


def _download(client, user, job: ExportJob):
    client.force_login(user)
    return client.get(reverse("dashboard:export_download", args=[STUDY, job.pk]))


def _page(client, user) -> str:
    client.force_login(user)
    content: bytes = client.get(reverse("dashboard:study", args=[STUDY])).content
    return content.decode()


def _lock(built: DicomStudy) -> None:
    study = built.study
    study.state, study.opened_at, study.locked_at = "locked", timezone.now(), timezone.now()
    study.save(update_fields=["state", "opened_at", "locked_at"])


def _built_job(client, user, capture) -> ExportJob:
    with capture(execute=False) as callbacks:
        assert _ask(client, user).status_code == 302
    assert len(callbacks) == 1  # the task is queued once the request's transaction commits
    job = ExportJob.objects.get()
    assert build_export_job(job_id=job.pk) == "done"
    job.refresh_from_db()
    return job


def _exports() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="study.export"))


def test_asking_queues_one_job_answers_at_once_and_a_double_submit_queues_no_second(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = _ask(client, built.statistician)
        second = _ask(client, built.statistician)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == reverse("dashboard:study", args=[STUDY]) + "#export-jobs"
    [job] = ExportJob.objects.all()
    assert (job.status, job.format, job.requested_by) == ("queued", "sr", built.statistician)
    assert len(callbacks) == 1
    assert _exports() == []  # nothing has left the platform yet
    page = _page(client, built.statistician)
    assert f'class="export-job" data-job="{job.pk}" data-status="queued"' in page
    assert reverse("dashboard:export_download", args=[STUDY, job.pk]) not in page
    response = _download(client, built.statistician, job)
    assert response.status_code == 409 and b"queued" in response.content


def test_the_worker_builds_the_zip_the_cli_writes_and_its_download_is_audited(
    client, built: DicomStudy, tmp_path: Path, django_capture_on_commit_callbacks
):
    job = _built_job(client, built.statistician, django_capture_on_commit_callbacks)
    finished = job.finished_at
    assert build_export_job(job_id=job.pk) == "done"  # redelivered: left as it is
    job.refresh_from_db()
    assert job.finished_at == finished and job.progress == 100
    page = _page(client, built.statistician)
    link = reverse("dashboard:export_download", args=[STUDY, job.pk])
    assert link in page and 'data-status="done"' in page and "stale" not in page

    response = _download(client, built.statistician, job)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="dcm-dicom-sr.zip"'
    body = b"".join(response.streaming_content)
    assert (len(body), hashlib.sha256(body).hexdigest()) == (job.size, job.sha256)
    [event] = _exports()
    assert event.actor == built.statistician
    assert event.after == {
        "format": "sr", "finding": None, "via": "web", "job": job.pk, "sha256": job.sha256
    }  # fmt: skip
    assert AuditEvent.objects.filter(action="analysis.interim_view").exists()

    out = tmp_path / "cli"
    call_command("export", STUDY, "--format", "sr", "-o", str(out))
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        for name in names:
            assert archive.read(name) == (out / name).read_bytes(), name
    assert len([n for n in names if n.endswith(".dcm")]) > 6


def test_download_follows_the_export_forms_access_rules(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    job = _built_job(client, built.statistician, django_capture_on_commit_callbacks)
    reader = Reader.objects.get(code="R07").user
    other = UserFactory(username="stats-elsewhere")
    other.groups.set([Group.objects.get(name=STATISTICIAN)])
    StudyMembership.objects.create(study=StudyFactory(slug="elsewhere"), user=other,
                                   role=MemberRole.STATISTICIAN)  # fmt: skip
    for user in (reader, other, built.coordinator):  # the coordinator: blinded until the lock
        assert _download(client, user, job).status_code == 403
        assert _ask(client, user).status_code == 403
    assert 'id="export-jobs"' not in _page(client, built.coordinator)
    assert _exports() == [] and ExportJob.objects.count() == 1
    # Another study's URL does not reach this study's job.
    client.force_login(other)
    url = reverse("dashboard:export_download", args=["elsewhere", job.pk])
    assert client.get(url).status_code == 404

    _lock(built)
    assert reverse("dashboard:export_download", args=[STUDY, job.pk]) in _page(
        client, built.coordinator
    )
    response = _download(client, built.coordinator, job)
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == job.sha256
    [event] = _exports()
    assert event.actor == built.coordinator
    assert not AuditEvent.objects.filter(action="analysis.interim_view").exists()


def test_a_failed_job_shows_its_error_and_a_new_request_starts_again(
    client, built: DicomStudy, settings, django_capture_on_commit_callbacks
):
    study = built.study
    study.ai_model_sha256 = "cd" * 32  # the registry's model is another file: refused
    study.save(update_fields=["ai_model_sha256"])
    with django_capture_on_commit_callbacks(execute=False):
        _ask(client, built.statistician)
    job = ExportJob.objects.get()
    assert build_export_job(job_id=job.pk) == "failed"
    assert build_export_job(job_id=job.pk) == "failed"  # redelivered: left as it is
    job.refresh_from_db()
    assert "PinnedModelError" in job.error and "sha256" in job.error and job.path == ""
    page = _page(client, built.statistician)
    assert 'data-status="failed"' in page and "registered chest-ai" in page
    response = _download(client, built.statistician, job)
    assert response.status_code == 409 and b"PinnedModelError" in response.content
    assert _exports() == []
    assert list((Path(settings.MEDIA_ROOT) / "exports").rglob("*.zip")) == []  # no partial file

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _ask(client, built.statistician)
    assert len(callbacks) == 1 and ExportJob.objects.count() == 2


def test_a_job_built_before_the_data_changed_is_stale_and_can_be_built_again(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    job = _built_job(client, built.statistician, django_capture_on_commit_callbacks)
    assert 'data-stale="true"' not in _page(client, built.statistician)
    case = built.study.cases.order_by("case_id").first()
    TruthFactory(case=case, finding_type=built.study.finding_types.first(), present=True)
    page = _page(client, built.statistician)
    assert 'data-stale="true"' in page and "the study's data changed" in page
    assert "Build again" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _ask(client, built.statistician).status_code == 302
    assert len(callbacks) == 1
    assert ExportJob.objects.exclude(pk=job.pk).get().status == "queued"


def test_a_job_whose_worker_died_shows_as_failed_and_gives_way_to_a_new_one(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _ask(client, built.statistician)
    job = ExportJob.objects.get()
    # The worker took the job and died: running, past the task's time limit.
    long_ago = timezone.now() - timedelta(hours=2)
    ExportJob.objects.filter(pk=job.pk).update(status="running", started_at=long_ago, progress=40)
    page = _page(client, built.statistician)
    assert 'data-status="failed"' in page and "the worker stopped" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _ask(client, built.statistician)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == "failed" and "time limit" in job.error
    # Its message, redelivered late, leaves it failed: the new job builds the file.
    assert build_export_job(job_id=job.pk) == "failed"
    new = ExportJob.objects.exclude(pk=job.pk).get()
    assert build_export_job(job_id=new.pk) == "done"


def test_a_running_job_redelivered_within_its_time_limit_is_built_again_from_scratch(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _ask(client, built.statistician)
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(
        status="running", started_at=timezone.now() - timedelta(minutes=5), progress=60
    )
    assert build_export_job(job_id=job.pk) == "done"
    job.refresh_from_db()
    assert job.progress == 100 and job.size and len(job.sha256) == 64
    assert job.started_at is not None and job.started_at > timezone.now() - timedelta(minutes=1)


def test_a_job_never_started_shows_as_failed_and_a_removed_file_is_not_served(
    client, built: DicomStudy, settings, django_capture_on_commit_callbacks
):
    job = _built_job(client, built.statistician, django_capture_on_commit_callbacks)
    (Path(settings.MEDIA_ROOT) / job.path).unlink()  # an operator cleared the exports
    assert "no longer stored" in _page(client, built.statistician)
    assert _download(client, built.statistician, job).status_code == 410
    assert _exports() == []
    with django_capture_on_commit_callbacks(execute=False):
        _ask(client, built.statistician)
    lost = ExportJob.objects.get(status="queued")
    # Its message never reached a worker: queued for longer than the task's time limit.
    ExportJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert "no worker started the export" in _page(client, built.statistician)
    response = _download(client, built.statistician, lost)
    assert response.status_code == 409 and b"no worker started" in response.content


def test_the_hourly_clean_up_removes_files_past_their_retention_and_partial_ones(
    client, built: DicomStudy, settings, django_capture_on_commit_callbacks
):
    old = _built_job(client, built.statistician, django_capture_on_commit_callbacks)
    old_file = Path(settings.MEDIA_ROOT) / old.path
    settings.EXPORT_RETENTION_DAYS = 7
    # Built eight days ago; a newer export of the same study was built since.
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    new = ExportJob.objects.create(study=old.study, format="sr")
    assert build_export_job(job_id=new.pk) == "done"
    new.refresh_from_db()
    # A worker killed mid-build two hours ago left its partial file; one building now has one too.
    folder = old_file.parent
    dead, building = folder / ".partial-dead.zip", folder / ".partial-now.zip"
    dead.write_bytes(b"half a zip")
    building.write_bytes(b"a zip being written")
    two_hours_ago = (timezone.now() - timedelta(hours=2)).timestamp()
    os.utime(dead, (two_hours_ago, two_hours_ago))

    assert expire_export_files() == 2  # the beat's task, as the worker runs it

    assert not old_file.exists() and not dead.exists()
    assert (Path(settings.MEDIA_ROOT) / new.path).is_file() and building.is_file()
    old.refresh_from_db()
    assert old.status == "done" and "removed 7 days after it was built" in old.error
    page = _page(client, built.statistician)
    assert "its file was removed 7 days after it was built" in page
    gone = _download(client, built.statistician, old)
    assert gone.status_code == 410 and b"removed 7 days after" in gone.content
    assert _download(client, built.statistician, new).status_code == 200
    assert expire_export_files() == 0  # a second run finds nothing more to do
    from studyplatform.celery import app

    schedule = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "dashboard.expire_exports" in schedule  # the beat runs it


def test_asking_while_the_broker_is_down_fails_the_job_at_once_and_asking_again_works(
    client, built: DicomStudy, broker_down, caplog, django_capture_on_commit_callbacks
):
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        assert _ask(client, built.statistician).status_code == 302  # answered, not a 500
    job = ExportJob.objects.get()
    assert job.status == "failed" and "broker" in job.error
    assert "could not queue dashboard.build_export" in caplog.text
    page = _page(client, built.statistician)
    assert 'data-status="failed"' in page and "could not be reached" in page
    # Asking again queues a new job (none is active); sent once the broker is back.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _ask(client, built.statistician).status_code == 302
    assert len(callbacks) == 1
    assert ExportJob.objects.exclude(pk=job.pk).get().status == "queued"


def test_the_jobs_state_answers_the_dashboards_poll_for_the_export_forms_people(
    client, built: DicomStudy, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _ask(client, built.statistician)
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(
        status="running", started_at=timezone.now(), progress=40
    )
    url = reverse("dashboard:export_jobs_status", args=[STUDY])
    state = client.get(url).json()
    assert state == {"jobs": [{"id": job.pk, "status": "running", "progress": 40, "error": ""}]}
    page = _page(client, built.statistician)
    assert f'data-job="{job.pk}" data-status="running"' in page and "export_jobs" in page
    # Before the lock the DICOM export (it carries arms) is the statistician's alone.
    client.force_login(built.coordinator)
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code in (403, 404)
