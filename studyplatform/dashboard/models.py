"""Cached analyses of a study, one per data version.

The analysis of a large study takes minutes, so it runs in a worker and its result is kept
under the version of the data it saw (a hash of the reads, truth and pre-reads). A new read
changes the version, so the next request computes afresh; the same version is never computed
twice.

Export jobs (:class:`ExportJob`) are the exports too large to build inside a web request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from studyplatform.studies.models import Study


class AnalysisStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AnalysisResult(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="analyses")
    data_version = models.CharField(max_length=64)
    protocol_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The study's protocol version the analysis followed."
    )
    status = models.CharField(
        max_length=10, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    stage = models.CharField(max_length=100, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "data_version"], name="analysis_unique_version"
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | Q(result__isnull=False), name="analysis_done_result"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100), name="analysis_progress_range"
            ),
        ]

    def __str__(self) -> str:
        return f"analysis of {self.study} at {self.data_version[:12]}: {self.status}"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_EXPORT = (ExportStatus.QUEUED, ExportStatus.RUNNING)


class ExportJob(models.Model):
    """An export built by a worker (the DICOM zip of a large study takes longer than a request
    may): who asked, its state and progress, and the finished file under MEDIA_ROOT.

    At most one job per study and format is queued or running (a partial unique index: the
    database refuses a second, whoever submits twice). ``data_version`` is the study's data
    version the worker read (:func:`studyplatform.dashboard.selectors.data_version`): a newer
    one makes the file stale.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="export_jobs")
    format = models.CharField(max_length=20)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    error = models.TextField(blank=True)
    data_version = models.CharField(max_length=64, blank=True)
    path = models.CharField(
        max_length=300, blank=True, help_text="The finished file, relative to MEDIA_ROOT."
    )
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["study", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "format"],
                condition=Q(status__in=["queued", "running"]),
                name="export_job_one_active",
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | (~Q(path="") & Q(size__isnull=False)),
                name="export_job_done_file",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100),
                name="export_job_progress_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.format} export of {self.study} #{self.pk}: {self.status}"

    def lost(self, now: datetime, limit: int) -> str:
        """Why this job will never finish, or "" while it may: running longer than the task's
        time limit of ``limit`` seconds (its worker died: a live one would have been stopped by
        then and marked it failed), or queued that long (its message was lost)."""
        if self.status == ExportStatus.RUNNING:
            since = self.started_at or self.created_at
            if now - since > timedelta(seconds=limit):
                return (
                    f"the worker stopped: no result {limit} s after the export started "
                    "(the task's time limit); ask for a new one"
                )
        elif self.status == ExportStatus.QUEUED and now - self.created_at > timedelta(
            seconds=limit
        ):
            return (
                f"no worker started the export within {limit} s (is a worker consuming the "
                "default queue?); ask for a new one"
            )
        return ""
