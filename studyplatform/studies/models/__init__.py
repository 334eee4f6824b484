"""Studies and what they are made of: sites, cases, images, finding types and ground truth.

A study moves draft -> open -> locked. Its seed and design are recorded before reading starts so
that the allocation can be regenerated bit for bit; a locked study is read-only.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Site(models.Model):
    """A hospital or imaging centre that contributes cases.

    A site's code is platform-wide (the push API and manifests name it), so several studies can
    use one site. ``study`` is the study whose coordinators edit the site: set when a study's
    coordinator creates it; empty for a site several studies share, which only superusers edit.
    """

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    study = models.ForeignKey(
        "Study",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="own_sites",
        help_text="The study whose coordinators edit this site (empty: superusers only).",
    )

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


class RatingScale(models.TextChoices):
    PROBABILITY = "probability", "Probability that the finding is present, 0-100"


class ContradictionRule(models.TextChoices):
    """What a submit does when the call and the rating disagree (absent at 90, present at 10)."""

    REJECT = "reject", "Refuse the read until the call and the rating agree"
    CONFIRM = "confirm", "Accept it once the reader confirms the contradiction"


class PrimaryEndpoint(models.TextChoices):
    AUC = "auc", "Reader-averaged AUC difference (OR MRMC), per finding type"
    MISSED = "missed", "Missed clinically significant findings (OR MRMC on sensitivity)"


class FrocRule(models.TextChoices):
    """When a reader's mark localizes a lesion of the truth (FROC scoring of the marks)."""

    INSIDE = "inside", "Inside the lesion: within its radius of its centre"
    DISTANCE = "distance", "Within a fixed distance (pixels) of the lesion's centre"


def generate_seed() -> int:
    """A randomization seed nobody chose: drawn by the server from the OS's secure source."""
    return secrets.randbits(62)


class StudyQuerySet(models.QuerySet["Study"]):
    def open(self) -> StudyQuerySet:
        return self.filter(state=StudyState.OPEN)


class Study(models.Model):
    slug = models.SlugField(max_length=60, unique=True, help_text="Short ID used in commands.")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    design = models.CharField(max_length=20, choices=Design.choices, default=Design.CROSSOVER)
    seed = models.BigIntegerField(
        default=generate_seed,
        validators=[MinValueValidator(0)],
        help_text="Every allocation derives from this seed, drawn by the server; concealed from "
        "staff until the study is locked.",
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
    rating_scale = models.CharField(
        max_length=20, choices=RatingScale.choices, default=RatingScale.PROBABILITY
    )
    contradiction_rule = models.CharField(
        max_length=10,
        choices=ContradictionRule.choices,
        default=ContradictionRule.REJECT,
        help_text="A call that contradicts its rating (absent at 90) is refused, or accepted "
        "once the reader confirms it.",
    )
    primary_endpoint = models.CharField(
        max_length=20, choices=PrimaryEndpoint.choices, default=PrimaryEndpoint.AUC
    )
    ni_margin = models.FloatField(
        null=True,
        blank=True,
        help_text="Non-inferiority margin on the primary endpoint's difference (empty: "
        "superiority).",
    )
    froc_rule = models.CharField(
        max_length=10,
        choices=FrocRule.choices,
        default=FrocRule.INSIDE,
        help_text="When a mark localizes a lesion of the truth (FROC scoring of the marks).",
    )
    froc_distance_px = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="The acceptance distance in image pixels for the 'distance' rule.",
    )
    ai_model_name = models.CharField(
        max_length=80, blank=True, help_text="The pinned AI model: the only one readers see."
    )
    ai_model_version = models.CharField(max_length=40, blank=True)
    ai_model_sha256 = models.CharField(
        max_length=64, blank=True, help_text="The pinned model file's sha256, as registered."
    )
    training_shows_ai = models.BooleanField(
        default=True,
        help_text="After a training read is submitted, show the reader the AI's answer for the "
        "case beside the truth (never before submission, never in analysed reads).",
    )
    protocol_version = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="The frozen protocol in force (0: a draft, not frozen yet).",
    )
    state = models.CharField(max_length=10, choices=StudyState.choices, default=StudyState.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    truth_finalized_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the ground truth was signed as final.",
    )

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
            models.CheckConstraint(
                condition=~Q(froc_rule="distance") | Q(froc_distance_px__gt=0),
                name="study_froc_distance_positive",
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

    @property
    def protocol_frozen(self) -> bool:
        """The protocol changes only by a signed amendment once the study has opened."""
        return self.protocol_version > 0

    @property
    def truth_finalized(self) -> bool:
        return self.truth_finalized_at is not None

    def has_member(self, user_id: int, role: str) -> bool:
        """Whether the user is on the study's staff in ``role`` (a MemberRole)."""
        return self.memberships.filter(user_id=user_id, role=role).exists()

    @property
    def has_pinned_model(self) -> bool:
        return bool(self.ai_model_name and self.ai_model_version and self.ai_model_sha256)


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
    ai_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The AI's operating threshold for this finding (empty: the pinned model's).",
    )
    introduced_in = models.PositiveIntegerField(
        default=1,
        help_text="Protocol version that added this finding type: reads from then on ask it.",
    )

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
    training = models.BooleanField(
        default=False,
        help_text="A training case: read by every reader before the analysed sessions, shown "
        "with its truth after submission, never randomized, exported or analysed.",
    )
    arrived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "case_id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "case_id"], name="case_unique_id"),
        ]
        indexes = [models.Index(fields=["study", "site"])]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.case_id}"


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
    # The intake rate limit's counter: requests in the minute that started at window_start.
    window_start = models.DateTimeField(null=True, blank=True, editable=False)
    window_requests = models.PositiveIntegerField(default=0, editable=False)

    objects = SiteTokenQuerySet.as_manager()

    class Meta:
        ordering = ["study", "site", "created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.site.code} -> {self.study.slug})"


class Protocol(models.Model):
    """One frozen version of a study's protocol: what the study promised, as it stood.

    Version 1 is frozen when the study opens; each signed amendment adds the next version.
    ``content`` is the whole protocol (design, arms, finding types and their significance, rating
    scale, AI thresholds, the pinned model, washout, primary endpoint, margin) and ``sha256`` its
    digest, which the amendment's signature and every analysis name.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="protocols")
    version = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    content = models.JSONField()
    sha256 = models.CharField(max_length=64)
    reason = models.TextField(help_text="Why: 'opened for reading', or the amendment's reason.")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["study", "version"]
        constraints = [
            models.UniqueConstraint(fields=["study", "version"], name="protocol_unique_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="protocol_version_1"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} protocol v{self.version}"


# Images and series live in their own module; imported last, as they refer to Case above.
from studyplatform.studies.models.hanging import (  # noqa: E402
    DescriptionMatch,
    HangingProtocol,
    HangingRule,
)
from studyplatform.studies.models.images import (  # noqa: E402
    Image,
    ImageFormat,
    OrderedBy,
    Series,
)
from studyplatform.studies.models.images import (  # noqa: E402
    _image_path as _image_path,  # old migrations name it here
)
from studyplatform.studies.models.refusals import ImportRefusal, RefusalSource  # noqa: E402

__all__ = [
    "Arm",
    "Case",
    "ContradictionRule",
    "DescriptionMatch",
    "Design",
    "FindingType",
    "FrocRule",
    "HangingProtocol",
    "HangingRule",
    "Image",
    "ImageFormat",
    "ImportRefusal",
    "MemberRole",
    "Modality",
    "OrderedBy",
    "PrimaryEndpoint",
    "Protocol",
    "RatingScale",
    "RefusalSource",
    "Series",
    "Site",
    "SiteToken",
    "Study",
    "StudyMembership",
    "StudyState",
    "Truth",
    "TruthSource",
    "generate_seed",
]
