"""Use cases of export jobs: exports built by a worker, kept as a file under MEDIA_ROOT.

The DICOM export (``sr``) of a large study takes longer than a web request may (gunicorn stops
a worker after 120 s), so the dashboard asks for a job (:func:`request_export`), a Celery task
builds the file (:func:`run_export`), and the dashboard lists the study's jobs with a link to
download a finished one. The download is recorded in the audit trail as the export form's
exports are (:func:`studyplatform.dashboard.services.record_export`): the data leaves the
platform when a file is downloaded, not when a worker writes it.

A worker that dies mid-job leaves it ``running``: once the task's time limit has passed it
cannot still be working, so the job is shown as failed (:meth:`ExportJob.lost`) and a new
request takes its place (the request marks it failed, with that reason, in the same
transaction). A redelivered message of such a job finds it failed and leaves it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from studyplatform.dashboard.exports.dicom import write_dicom_zip
from studyplatform.dashboard.models import ACTIVE_EXPORT, ExportJob, ExportStatus
from studyplatform.dashboard.selectors import data_version
from studyplatform.studies.models import Study

log = logging.getLogger(__name__)

JOB_FORMATS = ("sr",)
"""The export formats built by a worker; the others stream from the web request."""

EXPORT_TIME_LIMIT = 3600
"""Seconds a worker may spend on one export job (the task's time limit)."""

FILENAMES = {"sr": "{slug}-dicom-sr.zip"}


def export_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports"


def filename(job: ExportJob) -> str:
    """The name the downloaded file is given (as the export form names it)."""
    return FILENAMES[job.format].format(slug=job.study.slug)


def request_export(
    *, study: Study, fmt: str, user: AbstractBaseUser | AnonymousUser | None
) -> tuple[ExportJob, bool]:
    """The study's queued or running job of ``fmt``, or a new one queued: (job, created).

    A double submit gets the job in flight (the database's unique index decides between two
    concurrent requests). A job past the task's time limit is marked failed first.
    """

    if fmt not in JOB_FORMATS:
        raise ValueError(f"format {fmt!r} is not built by a worker ({', '.join(JOB_FORMATS)} are)")
    now = timezone.now()
    with transaction.atomic():
        for active in ExportJob.objects.select_for_update().filter(
            study=study, format=fmt, status__in=ACTIVE_EXPORT
        ):
            reason = active.lost(now, EXPORT_TIME_LIMIT)
            if not reason:
                return active, False
            ExportJob.objects.filter(pk=active.pk).update(
                status=ExportStatus.FAILED, error=reason, finished_at=now
            )
        try:
            with transaction.atomic():
                job = ExportJob.objects.create(
                    study=study,
                    format=fmt,
                    requested_by_id=user.pk if user is not None and user.is_authenticated else None,
                )
        except IntegrityError:  # a concurrent request queued one first
            return ExportJob.objects.get(study=study, format=fmt, status__in=ACTIVE_EXPORT), False
        transaction.on_commit(lambda: _send(job.pk))
    return job, True


def _send(job_id: int) -> None:
    """Queue the job's task; a broker that cannot take it fails the job at once, saying so.

    No sweeper sends export jobs again (unlike pre-reads): a job left queued would only be
    called lost after the task's time limit, so the person who asked sees the failure now and
    can ask again once the broker is back.
    """
    from studyplatform.celery import send
    from studyplatform.dashboard.tasks import build_export_job  # the task module imports us

    if not send(build_export_job, job_id=job_id):
        ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
            status=ExportStatus.FAILED,
            error="the task queue (broker) could not be reached; ask again when it is back",
            finished_at=timezone.now(),
        )


def run_export(*, job_id: int) -> ExportJob:
    """Build one job's file; safe to run twice.

    A done or failed job is left as it is; a queued one, or a running one whose worker died
    (the message redelivered), is built from scratch. The file is written to a temporary file
    beside its final name and renamed when complete, so a reader of the path never sees half a
    zip. Any error marks the job failed with the error's text.
    """
    claimed = ExportJob.objects.filter(pk=job_id, status__in=ACTIVE_EXPORT).update(
        status=ExportStatus.RUNNING, started_at=timezone.now(), progress=0, error=""
    )
    job = ExportJob.objects.select_related("study").get(pk=job_id)
    if not claimed:
        return job
    try:
        built = _build(job)
    except SoftTimeLimitExceeded:
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED,
            error=f"the export took longer than its time limit ({EXPORT_TIME_LIMIT} s)",
            finished_at=timezone.now(),
        )
    except Exception as error:  # never leave the job "running": say what went wrong
        log.exception("export job %s of study %s failed", job.pk, job.study.slug)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
        )
    else:
        ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING).update(
            status=ExportStatus.DONE,
            progress=100,
            path=built.path,
            size=built.size,
            sha256=built.sha256,
            data_version=built.data_version,
            finished_at=timezone.now(),
        )
    job.refresh_from_db()
    return job


@dataclass(frozen=True)
class _Built:
    path: str  # relative to MEDIA_ROOT
    size: int
    sha256: str
    data_version: str


def _build(job: ExportJob) -> _Built:
    study = job.study
    # Read before the data: a read submitted while the file is built makes the job stale.
    version = data_version(study)
    relative = Path("exports") / study.slug / f"{job.pk}-{filename(job)}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    last = -1

    def progress(done: int, total: int) -> None:
        nonlocal last
        percent = min(99, done * 100 // max(total, 1))
        if percent != last:
            last = percent
            ExportJob.objects.filter(pk=job.pk).update(progress=percent)

    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".zip")
    try:
        with os.fdopen(handle, "w+b") as out:
            write_dicom_zip(study, out, progress=progress)
            out.flush()
            os.fsync(out.fileno())
            out.seek(0)
            digest = hashlib.file_digest(out, "sha256").hexdigest()
            size = out.tell()
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return _Built(str(relative), size, digest, version)


def expire_exports(*, now: datetime | None = None) -> int:
    """Remove what the export jobs left on disk and no one should download any more.

    A done job's file goes ``EXPORT_RETENTION_DAYS`` after it was built (the zip holds every
    read with its arm; it should not lie on the server longer than it is needed): the job stays,
    says when and why its file went, and its download answers 410. A partial file (``.partial-``)
    older than the task's time limit was left by a worker that died mid-build. Returns how many
    files were removed. Run hourly by the beat (``dashboard.expire_exports``).
    """
    now = now or timezone.now()
    days = settings.EXPORT_RETENTION_DAYS
    removed = 0
    expired = ExportJob.objects.filter(
        status=ExportStatus.DONE, finished_at__lt=now - timedelta(days=days), error=""
    ).select_related("study")
    for job in expired:
        path = job_file(job)
        if path is not None:
            path.unlink(missing_ok=True)
            removed += 1
        ExportJob.objects.filter(pk=job.pk).update(
            error=f"its file was removed {days} days after it was built (EXPORT_RETENTION_DAYS)"
        )
    root = export_root()
    if root.is_dir():
        oldest = now.timestamp() - EXPORT_TIME_LIMIT
        for partial in root.glob("*/.partial-*"):
            try:
                if partial.stat().st_mtime < oldest:
                    partial.unlink()
                    removed += 1
            except FileNotFoundError:  # removed meanwhile (a concurrent run)
                continue
    if removed:
        log.info("removed %d export file(s) past their retention", removed)
    return removed


def job_file(job: ExportJob) -> Path | None:
    """The finished file of a done job, or None when it is not there (any more)."""
    if job.status != ExportStatus.DONE or not job.path:
        return None
    root = export_root().resolve()
    path = (Path(settings.MEDIA_ROOT) / job.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


@dataclass(frozen=True)
class JobRow:
    """One job as the dashboard shows it: a job lost with its worker shows as failed."""

    job: ExportJob
    status: str
    error: str
    stale: bool  # done, but the study's data changed since the file was built
    downloadable: bool


def recent_jobs(
    *, study: Study, formats: tuple[str, ...], limit: int = 10, stale: bool = True
) -> list[JobRow]:
    """The study's latest export jobs of ``formats``, newest first (see :func:`job_rows`)."""
    return job_rows(
        list(
            ExportJob.objects.filter(study=study, format__in=formats)
            .select_related("study", "requested_by")
            .order_by("-created_at", "-id")[:limit]
        ),
        stale=stale,
    )


def job_rows(jobs: list[ExportJob], *, stale: bool = True) -> list[JobRow]:
    """The jobs (of one study) as the dashboard shows them.

    ``stale`` compares done jobs with the study's data version, a digest of all its reads,
    truth and pre-reads; callers that only follow state and progress (the page's poll) skip it.
    """
    if not jobs:
        return []
    now = timezone.now()
    finished = [j for j in jobs if j.status == ExportStatus.DONE]
    current = data_version(finished[0].study) if stale and finished else ""
    rows = []
    for job in jobs:
        reason = job.lost(now, EXPORT_TIME_LIMIT)
        status, error = (ExportStatus.FAILED.value, reason) if reason else (job.status, job.error)
        done = status == ExportStatus.DONE
        rows.append(
            JobRow(job, status, error, stale=stale and done and job.data_version != current,
                   downloadable=done and job_file(job) is not None)
        )  # fmt: skip
    return rows
