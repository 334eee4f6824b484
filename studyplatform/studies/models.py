"""Studies and what they are made of: sites, cases, images, finding types and ground truth.

A study moves draft -> open -> locked. Its seed and design are recorded before reading starts so
that the allocation can be regenerated bit for bit; a locked study is read-only.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class Site(models.Model):
    """A hospital or imaging centre that contributes cases."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Design(models.TextChoices):
    CROSSOVER = "crossover", "Crossover with washout (fully crossed)"
    SEQUENTIAL = "sequential", "Sequential (unassisted, then assisted)"
    SPLIT_PLOT = "split_plot", "Split-plot"
    PROSPECTIVE = "prospective", "Prospective parallel"


class StudyState(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open for reading"
    LOCKED = "locked", "Locked"


class StudyQuerySet(models.QuerySet["Study"]):
    def open(self) -> StudyQuerySet:
        return self.filter(state=StudyState.OPEN)


class Study(models.Model):
    slug = models.SlugField(max_length=60, unique=True, help_text="Short ID used in commands.")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    design = models.CharField(max_length=20, choices=Design.choices, default=Design.CROSSOVER)
    seed = models.BigIntegerField(
        validators=[MinValueValidator(0)],
        help_text="Every allocation derives from this seed; it cannot change once the study opens.",
    )
    washout_days = models.PositiveIntegerField(
        default=28, help_text="Minimum days between a reader's crossover sessions."
    )
    split_plot_groups = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="Reader groups (split-plot only)."
    )
    readers_per_case = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Readers who read each arriving case (prospective design only).",
    )
    state = models.CharField(max_length=10, choices=StudyState.choices, default=StudyState.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "studies"
        permissions = [
            ("lock_study", "Can lock a study"),
            ("view_analysis", "Can view a study's analysis"),
            ("export_study", "Can export a study's data"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state="draft") | Q(opened_at__isnull=False),
                name="study_opened_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="locked") | Q(locked_at__isnull=False),
                name="study_locked_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_locked(self) -> bool:
        return self.state == StudyState.LOCKED

    @property
    def allocation_frozen(self) -> bool:
        """Allocation and design may change only while the study is a draft."""
        return self.state != StudyState.DRAFT


class Arm(models.Model):
    """A reading condition. ``shows_ai`` decides whether the reader may see any AI output."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="arms")
    name = models.SlugField(max_length=40)
    label = models.CharField(max_length=100)
    shows_ai = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["study", "order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="arm_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}:{self.name}"


class FindingType(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="finding_types")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=100)
    clinically_significant = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["study", "order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["study", "code"], name="finding_type_unique_code"),
        ]

    def __str__(self) -> str:
        return self.name


class Modality(models.TextChoices):
    CR = "CR", "Computed radiography"
    DX = "DX", "Digital radiography"
    CT = "CT", "Computed tomography"
    MR = "MR", "Magnetic resonance"
    MG = "MG", "Mammography"


class Case(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    case_id = models.CharField(max_length=64, help_text="The case's ID in the manifest.")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="cases")
    modality = models.CharField(max_length=2, choices=Modality.choices)
    manufacturer = models.CharField(max_length=100, blank=True)
    manufacturer_model = models.CharField(max_length=100, blank=True)
    arrived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "case_id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "case_id"], name="case_unique_id"),
        ]
        indexes = [models.Index(fields=["study", "site"])]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.case_id}"


class ImageFormat(models.TextChoices):
    DICOM = "dicom", "DICOM"
    PNG = "png", "PNG"
    JPEG = "jpeg", "JPEG"


def _image_path(image: Image, filename: str) -> str:
    return f"studies/{image.case.study_id}/cases/{image.case_id}/{filename}"


class Image(models.Model):
    """One image of a case: the stored (de-identified) original and the viewer's derivative.

    The derivative is a 16-bit grayscale PNG holding the stored values, so that the browser can
    apply window/level exactly for 12-16-bit data.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveSmallIntegerField(default=1)
    original = models.FileField(upload_to=_image_path, max_length=300)
    display = models.FileField(upload_to=_image_path, max_length=300)
    sha256 = models.CharField(max_length=64, help_text="Of the stored original.")
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    bits_stored = models.PositiveSmallIntegerField(default=8)
    window_center = models.FloatField()
    window_width = models.FloatField(validators=[MinValueValidator(1.0)])
    display_offset = models.IntegerField(
        default=0,
        help_text="Added to the stored values to make the derivative unsigned (e.g. CT in HU); "
        "the window is in derivative units.",
    )
    source_sha256 = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="Of the file as received, before de-identification: recognises re-imports.",
    )
    source_format = models.CharField(max_length=10, choices=ImageFormat.choices, blank=True)
    transfer_syntax = models.CharField(max_length=64, blank=True)
    burned_in_annotation = models.CharField(
        max_length=3,
        blank=True,
        help_text="The header's BurnedInAnnotation (YES, NO, or empty when it does not say).",
    )

    class Meta:
        ordering = ["case", "position"]
        constraints = [
            models.UniqueConstraint(fields=["case", "position"], name="image_unique_position"),
            models.CheckConstraint(condition=Q(window_width__gt=0), name="image_window_positive"),
            models.CheckConstraint(
                condition=Q(bits_stored__gte=1) & Q(bits_stored__lte=16), name="image_bits_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case} #{self.position}"


class TruthSource(models.TextChoices):
    IMPORT = "import", "Imported"
    ADJUDICATION = "adjudication", "Adjudication panel"
    FOLLOW_UP = "follow_up", "Clinical follow-up"
    SYNTHETIC = "synthetic", "Synthetic (demo)"


class Truth(models.Model):
    """The reference standard for one case and finding type."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="truths")
    finding_type = models.ForeignKey(FindingType, on_delete=models.RESTRICT, related_name="truths")
    present = models.BooleanField()
    source = models.CharField(max_length=20, choices=TruthSource.choices)
    location = models.JSONField(
        null=True, blank=True, help_text="Optional lesion location in image coordinates."
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["case", "finding_type"]
        constraints = [
            models.UniqueConstraint(fields=["case", "finding_type"], name="truth_unique_finding"),
        ]

    def __str__(self) -> str:
        return f"{self.case}: {self.finding_type.code}={'present' if self.present else 'absent'}"


class MemberRole(models.TextChoices):
    COORDINATOR = "coordinator", "Coordinator"
    STATISTICIAN = "statistician", "Statistician"


class StudyMembership(models.Model):
    """Staff of a study: coordinators manage it, statisticians read its analysis and exports."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="study_memberships"
    )
    role = models.CharField(max_length=20, choices=MemberRole.choices)

    class Meta:
        ordering = ["study", "role", "user"]
        constraints = [
            models.UniqueConstraint(fields=["study", "user", "role"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.study}"


class SiteTokenQuerySet(models.QuerySet["SiteToken"]):
    def active(self) -> SiteTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class SiteToken(models.Model):
    """A hospital system's credential for sending cases of one study from one site.

    Only the SHA-256 of the token is stored (tokens are long random strings, so a fast hash is
    enough); the token itself is shown once, when it is issued.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="site_tokens")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, help_text="Which system uses it, e.g. 'PACS router'.")
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = SiteTokenQuerySet.as_manager()

    class Meta:
        ordering = ["study", "site", "created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.site.code} -> {self.study.slug})"
