"""Cached analyses of a study, one per data version.

The analysis of a large study takes minutes, so it runs in a worker and its result is kept
under the version of the data it saw (a hash of the reads, truth and pre-reads). A new read
changes the version, so the next request computes afresh; the same version is never computed
twice.
"""

from __future__ import annotations

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
