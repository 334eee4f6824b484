"""Readers, their sessions and assignments, and what they answered.

The allocation (Assignment rows) is stored in full before reading starts. A Read is written once,
at submission, with server-side start and submit times; it never changes afterwards. A correction
is a new Read that names the one it supersedes.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from studyplatform.studies.models import Arm, Case, FindingType, Study


class ReaderRole(models.TextChoices):
    """A reader's position: a qualification reported with the study (who read the cases)."""

    ATTENDING = "attending", "Attending / consultant"
    FELLOW = "fellow", "Fellow"
    RESIDENT = "resident", "Resident / registrar"
    OTHER = "other", "Other"


class Reader(models.Model):
    """A radiologist taking part in studies. ``code`` is the pseudonym used in exports."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reader"
    )
    code = models.SlugField(max_length=20, unique=True)
    specialty = models.CharField(max_length=100, blank=True)
    years_experience = models.PositiveSmallIntegerField(null=True, blank=True)
    role = models.CharField(max_length=20, choices=ReaderRole.choices, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Enrolment(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="enrolments")
    reader = models.ForeignKey(Reader, on_delete=models.PROTECT, related_name="enrolments")
    group = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Reader group (split-plot designs)."
    )
    enrolled_at = models.DateTimeField(auto_now_add=True)
    training_waived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A coordinator waived the reader's training (audited, with the reason).",
    )
    training_waiver_reason = models.TextField(blank=True)
    training_waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["study", "reader"]
        constraints = [
            models.UniqueConstraint(fields=["study", "reader"], name="enrolment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.reader} in {self.study}"


class ReadingSession(models.Model):
    """One sitting of a reader in a study; crossover sessions open ``washout_days`` apart.

    A ``training`` session holds the reader's reads of the study's training cases: never part of
    the allocation, never analysed; the analysed sessions open once it is complete (or waived).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sessions")
    reader = models.ForeignKey(Reader, on_delete=models.PROTECT, related_name="sessions")
    number = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    training = models.BooleanField(
        default=False, help_text="The reader's training session (training cases only)."
    )
    available_from = models.DateTimeField(
        null=True, blank=True, help_text="Locked until then (washout); open at once when empty."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    washout_waived = models.BooleanField(
        default=False,
        help_text="Opens at available_from even if the previous session ended less than the "
        "washout ago: an explicit, audited waiver.",
    )
    washout_waiver_reason = models.TextField(blank=True)
    washout_waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    washout_waived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "reader", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "reader", "training", "number"], name="session_unique_number"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="session_number_positive"),
        ]

    def __str__(self) -> str:
        if self.training:
            return f"{self.study} {self.reader} training"
        return f"{self.study} {self.reader} session {self.number}"


class Assignment(models.Model):
    """Reader x case x arm x session, at a position in the reader's order.

    ``step`` orders two reads of the same case in one sitting (sequential design: 1 unassisted,
    2 assisted). ``opened_at`` is when the reader first opened it: until then, no page shows the
    arm to the reader (concealment).
    """

    session = models.ForeignKey(
        ReadingSession, on_delete=models.CASCADE, related_name="assignments"
    )
    reader = models.ForeignKey(Reader, on_delete=models.PROTECT, related_name="assignments")
    case = models.ForeignKey(Case, on_delete=models.RESTRICT, related_name="assignments")
    arm = models.ForeignKey(Arm, on_delete=models.RESTRICT, related_name="assignments")
    position = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    step = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    opened_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "position", "step"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "case", "arm", "session"], name="assignment_unique_read"
            ),
            models.UniqueConstraint(
                fields=["session", "position", "step"], name="assignment_unique_position"
            ),
            models.CheckConstraint(condition=Q(position__gte=1), name="assignment_position_1"),
        ]
        indexes = [models.Index(fields=["reader", "session"])]

    def __str__(self) -> str:
        return f"{self.session} #{self.position}.{self.step}: {self.case.case_id}"


class ReadDraft(models.Model):
    """Work in progress on an assignment, saved as the reader works (a closed tab loses nothing)."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="draft")
    data = models.JSONField(default=dict)
    started_at = models.DateTimeField(help_text="Server time the reader first opened the case.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"draft of {self.assignment}"


class Read(models.Model):
    """A submitted read. Written once; a correction is a new Read with ``supersedes`` set."""

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="reads")
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    correction_reason = models.TextField(blank=True)
    free_text = models.TextField(blank=True)
    started_at = models.DateTimeField()
    submitted_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=64, unique=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    protocol_version = models.PositiveIntegerField(
        default=1, help_text="The study's protocol version in force when the read was submitted."
    )
    contradiction_confirmed = models.BooleanField(
        default=False,
        help_text="The reader confirmed a call that contradicts its rating (study's rule).",
    )

    class Meta:
        ordering = ["assignment", "submitted_at"]
        constraints = [
            # One original read per assignment; corrections chain from it.
            models.UniqueConstraint(
                fields=["assignment"],
                condition=Q(supersedes__isnull=True),
                name="read_one_submitted_per_assignment",
            ),
            models.CheckConstraint(
                condition=Q(submitted_at__gte=F("started_at")), name="read_submitted_after_start"
            ),
            models.CheckConstraint(
                condition=Q(supersedes__isnull=True) | ~Q(correction_reason=""),
                name="read_correction_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"read of {self.assignment}"

    @property
    def duration_s(self) -> float:
        return (self.submitted_at - self.started_at).total_seconds()


class ReadFinding(models.Model):
    """Per finding type: the call, the confidence 0-100, and optional marks on the image."""

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="findings")
    finding_type = models.ForeignKey(FindingType, on_delete=models.RESTRICT, related_name="+")
    present = models.BooleanField()
    confidence = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    marks = models.JSONField(
        default=list, blank=True, help_text="[{image, x, y}] in image pixel coordinates."
    )

    class Meta:
        ordering = ["read", "finding_type"]
        constraints = [
            models.UniqueConstraint(fields=["read", "finding_type"], name="readfinding_unique"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=100),
                name="readfinding_confidence_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding_type.code}: {'present' if self.present else 'absent'}"


class ReadMeasurement(models.Model):
    """A length the reader measured on a slice: the line's endpoints in image pixel coordinates
    and its length, computed by the server from the series' stored PixelSpacing (row spacing
    along y, column spacing along x); ``length_mm`` is empty when the series has no spacing."""

    read = models.ForeignKey(Read, on_delete=models.CASCADE, related_name="measurements")
    number = models.PositiveSmallIntegerField(help_text="From 1, in the order drawn.")
    image = models.PositiveSmallIntegerField(help_text="The image's position in the case.")
    series = models.PositiveSmallIntegerField()
    slice = models.PositiveIntegerField()
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    length_px = models.FloatField()
    length_mm = models.FloatField(null=True, blank=True)
    row_spacing = models.FloatField(null=True, blank=True, help_text="mm, as stored at import.")
    column_spacing = models.FloatField(null=True, blank=True, help_text="mm, as stored at import.")

    class Meta:
        ordering = ["read", "number"]
        constraints = [
            models.UniqueConstraint(fields=["read", "number"], name="readmeasurement_unique"),
        ]

    def __str__(self) -> str:
        length = (
            f"{self.length_mm:.1f} mm" if self.length_mm is not None else f"{self.length_px:.1f} px"
        )
        return f"measurement {self.number}: {length}"


class AllocationRecord(models.Model):
    """The stored allocation's identity: design, seed and the fingerprint of its rows.

    Written once by ``randomize_study``; the Assignment rows of the study must always
    fingerprint to this value (``verify_allocation`` checks it). For the prospective design there
    is no fixed allocation: the fingerprint is empty and arriving cases are allocated one by one.
    """

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="allocation")
    design = models.CharField(max_length=20)
    seed = models.BigIntegerField()
    arms = models.JSONField(help_text="Arm names in the study's order, as given to the randomizer.")
    fingerprint = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = "allocation"

    def __str__(self) -> str:
        # No seed: the name shows on pages (titles, links) while the seed is concealed.
        return f"allocation of {self.study} ({self.design})"


class ReadTelemetry(models.Model):
    """How the reader read: written once with the original read, never changed.

    ``series`` holds, per series of the case, ``{"series", "slices_total", "slices_viewed"
    (slice numbers), "time_s"}`` (``time_s``: seconds on screen in any viewport with the tab
    visible, each series capped by the server's time from opening to submission); the slice
    totals sum it. ``series_time_s`` is the seconds any of the case's images was on screen (the
    page's own count, within the same cap): with several viewports the series' ``time_s`` may
    sum to more. ``ai_*`` are zero or empty for an unassisted read. ``notes`` say what the
    server capped.
    """

    read = models.OneToOneField(Read, on_delete=models.CASCADE, related_name="telemetry")
    series = models.JSONField(default=list)
    slices_viewed = models.PositiveIntegerField()
    slices_total = models.PositiveIntegerField()
    series_time_s = models.FloatField(help_text="Seconds the case's images were on screen.")
    ai_panel_shown = models.BooleanField(default=False)
    ai_overlay_on = models.BooleanField(
        default=False, help_text="The AI heatmap overlay was on screen at some time."
    )
    ai_overlay_s = models.FloatField(default=0.0, help_text="Seconds the overlay was on screen.")
    ai_first_view_s = models.FloatField(
        null=True, blank=True, help_text="Seconds from opening the case to the first AI view."
    )
    notes = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "read telemetry"
        constraints = [
            models.CheckConstraint(
                condition=Q(series_time_s__gte=0) & Q(ai_overlay_s__gte=0),
                name="readtelemetry_durations_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(slices_viewed__lte=F("slices_total")),
                name="readtelemetry_viewed_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"telemetry of {self.read}"
