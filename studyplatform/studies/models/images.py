"""A case's images: its series, and each series' slices (one Image per slice).

A radiograph is a series of one slice; a CT or MR series is a stack of slices ordered along the
series' normal (the cross product of ImageOrientationPatient's row and column directions). Every
UID kept here is the de-identified replacement, never the original.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from studyplatform.studies.models import Case


class ImageFormat(models.TextChoices):
    DICOM = "dicom", "DICOM"
    PNG = "png", "PNG"
    JPEG = "jpeg", "JPEG"


class OrderedBy(models.TextChoices):
    """How a series' slices were put in order at import."""

    POSITION = "position", "Position along the series' normal (ImagePositionPatient)"
    INSTANCE_NUMBER = "instance_number", "InstanceNumber (positions missing or inconsistent)"
    RECEIVED = "received", "The order the files were received in (no header to order by)"


class SeriesManager(models.Manager["Series"]):
    def first_of(self, case: Case) -> Series:
        """The case's first series, created for a case stored image by image (a radiograph)."""
        series, _ = self.get_or_create(case=case, position=1, defaults={"modality": case.modality})
        return series


class Series(models.Model):
    """One series of a case: a radiograph (one slice) or a CT/MR stack.

    ``slice_spacing`` is measured from the slices' positions at import (the median distance
    between neighbours along ``normal``), not taken from the header; ``window_center`` and
    ``window_width`` are the series' own window in stored units (e.g. HU), from the 1st-99th
    percentile of its middle slices.
    """

    case: models.ForeignKey[Case, Case] = models.ForeignKey(
        "studies.Case", on_delete=models.CASCADE, related_name="series"
    )
    position = models.PositiveSmallIntegerField(
        default=1, help_text="The series' place in the case, from 1."
    )
    number = models.IntegerField(null=True, blank=True, help_text="The header's SeriesNumber.")
    study_uid = models.CharField(max_length=64, blank=True, help_text="De-identified.")
    series_uid = models.CharField(max_length=64, blank=True, help_text="De-identified.")
    modality = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=64, blank=True)
    body_part = models.CharField(max_length=16, blank=True)
    view_position = models.CharField(
        max_length=16, blank=True, help_text="The header's ViewPosition (PA, AP, LL...)."
    )
    normal = models.JSONField(
        null=True, blank=True, help_text="Unit normal [x, y, z] of the slices (patient axes)."
    )
    slice_thickness = models.FloatField(null=True, blank=True, help_text="mm, from the header.")
    slice_spacing = models.FloatField(
        null=True, blank=True, help_text="mm between neighbouring slices, from their positions."
    )
    pixel_spacing = models.JSONField(
        null=True, blank=True, help_text="[row, column] spacing in mm, from the header."
    )
    ordered_by = models.CharField(
        max_length=20, choices=OrderedBy.choices, default=OrderedBy.RECEIVED
    )
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True, validators=[MinValueValidator(1.0)])

    objects = SeriesManager()

    class Meta:
        ordering = ["case", "position"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["case", "position"], name="series_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.case} series {self.position}"


def _image_path(image: Image, filename: str) -> str:
    return f"studies/{image.case.study_id}/cases/{image.case_id}/{filename}"


class Image(models.Model):
    """One image of a case (a slice of one of its series): the stored (de-identified) original
    and the viewer's derivative.

    The derivative is a 16-bit grayscale PNG holding the stored values, so that the browser can
    apply window/level exactly for 12-16-bit data. ``position`` orders all images of the case
    (series by series); ``slice_number`` orders the slices of one series, from 1.
    """

    case: models.ForeignKey[Case, Case] = models.ForeignKey(
        "studies.Case", on_delete=models.CASCADE, related_name="images"
    )
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="slices")
    position = models.PositiveSmallIntegerField(default=1)
    slice_number = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    instance_number = models.IntegerField(null=True, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True, help_text="De-identified.")
    frame = models.PositiveIntegerField(
        null=True, blank=True, help_text="The frame of a multi-frame original, from 1."
    )
    slice_position = models.FloatField(
        null=True, blank=True, help_text="mm along the series' normal (ImagePositionPatient)."
    )
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
            models.UniqueConstraint(
                fields=["series", "slice_number"], name="image_unique_slice_number"
            ),
            models.CheckConstraint(condition=Q(window_width__gt=0), name="image_window_positive"),
            models.CheckConstraint(
                condition=Q(bits_stored__gte=1) & Q(bits_stored__lte=16), name="image_bits_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case} #{self.position}"
