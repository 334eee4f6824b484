"""AI models and their pre-reads of cases.

An AIModel is a file on disk plus a spec; its sha256 is recorded at registration and checked
before every run. A PreRead is one model's output on one case: a probability per finding type and
a Grad-CAM heatmap aligned to the displayed image.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from studyplatform.studies.models import Case, FindingType


class ModelFormat(models.TextChoices):
    FACTORY = "factory", "Python factory + state_dict"
    TORCHSCRIPT = "torchscript", "TorchScript"
    MONAI_BUNDLE = "monai_bundle", "MONAI bundle"


class AIModel(models.Model):
    name = models.SlugField(max_length=80)
    version = models.CharField(max_length=40)
    format = models.CharField(max_length=20, choices=ModelFormat.choices)
    path = models.CharField(max_length=500, help_text="File or bundle directory on the server.")
    factory = models.CharField(
        max_length=200,
        blank=True,
        help_text="For the factory format: 'module:function' that builds the network.",
    )
    sha256 = models.CharField(max_length=64, help_text="Recorded at registration.")
    finding_codes = models.JSONField(help_text="Finding type codes in the model's output order.")
    threshold = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Operating threshold on the probability.",
    )
    spec = models.JSONField(default=dict, help_text="Input size, channels, normalization, ...")
    registered_at = models.DateTimeField(auto_now_add=True)
    # The intended use, as the manufacturer states it; the submission checklist reports it.
    # Frozen once a study pinning the model opens (prereads.intended_use).
    intended_use = models.TextField(
        blank=True, help_text="The clinical task the model is intended for, in a sentence or two."
    )
    target_population = models.CharField(
        max_length=200, blank=True, help_text="Patients the model is intended for."
    )
    modality = models.CharField(
        max_length=100, blank=True, help_text="Imaging modality and view, e.g. CR/DX chest PA."
    )
    clinical_setting = models.CharField(
        max_length=200, blank=True, help_text="Where it is used, e.g. emergency department."
    )
    intended_users = models.CharField(
        max_length=200, blank=True, help_text="Who uses its output, e.g. radiologists."
    )

    class Meta:
        ordering = ["name", "version"]
        verbose_name = "AI model"
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="aimodel_unique_version"),
            models.CheckConstraint(
                condition=Q(threshold__gte=0.0) & Q(threshold__lte=1.0),
                name="aimodel_threshold_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class PreReadStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


def _heatmap_path(preread: PreRead, filename: str) -> str:
    return f"studies/{preread.case.study_id}/prereads/{preread.model_id}/{filename}"


class PreRead(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="prereads")
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="prereads")
    status = models.CharField(
        max_length=10, choices=PreReadStatus.choices, default=PreReadStatus.PENDING
    )
    heatmap = models.FileField(upload_to=_heatmap_path, blank=True, max_length=300)
    heatmap_slices = models.PositiveIntegerField(
        default=0,
        help_text="A slices (2.5-D) or volume (3-D) model's heatmap stacks this many per-slice "
        "maps, top to bottom in the slice order of the case's first series; 0: one map of the "
        "first image.",
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # While running: the run's claim (its task ID) and when it last showed it was alive. A run
    # whose heartbeat is older than PREREAD_STALE_AFTER is presumed dead and swept back.
    claim = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    timings = models.JSONField(
        default=dict, blank=True, help_text="Milliseconds per stage (decode, forward, ...)."
    )

    class Meta:
        ordering = ["case", "model"]
        verbose_name = "pre-read"
        constraints = [
            models.UniqueConstraint(fields=["case", "model"], name="preread_unique_case_model"),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error=""), name="preread_failed_has_error"
            ),
        ]
        indexes = [models.Index(fields=["model", "status"])]

    def __str__(self) -> str:
        return f"{self.model} on {self.case}: {self.status}"


class PreReadFinding(models.Model):
    preread = models.ForeignKey(PreRead, on_delete=models.CASCADE, related_name="findings")
    finding_type = models.ForeignKey(FindingType, on_delete=models.RESTRICT, related_name="+")
    probability = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])

    class Meta:
        ordering = ["preread", "finding_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["preread", "finding_type"], name="prereadfinding_unique_finding"
            ),
            models.CheckConstraint(
                condition=Q(probability__gte=0.0) & Q(probability__lte=1.0),
                name="prereadfinding_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding_type.code}: {self.probability:.3f}"
