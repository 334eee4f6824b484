"""Hanging protocols: how a study lays out a case's series on the reading page, as data.

A protocol is a grid (rows x columns) and one rule per viewport. A rule matches the case's
*units* (what the viewer shows as one picture: a CT/MR stack of several slices, or one image of
any other series) on modality, series description, view position and body part, and takes the
``nth`` unit that matches. The selector (:mod:`studyplatform.studies.hanging`) tries the study's
protocols in ``priority`` order and uses the first whose required rules all find a unit; when
none does, the case opens in the single default viewport.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from studyplatform.studies.models import Study

MAX_GRID = 4


class DescriptionMatch(models.TextChoices):
    CONTAINS = "contains", "contains (case-insensitive)"
    REGEX = "regex", "matches the regular expression (case-insensitive)"


class HangingProtocol(models.Model):
    study: models.ForeignKey[Study, Study] = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="hanging_protocols"
    )
    name = models.CharField(max_length=100)
    priority = models.PositiveSmallIntegerField(
        default=1, help_text="Protocols are tried in this order (lowest first)."
    )
    case_modality = models.CharField(
        max_length=2,
        blank=True,
        help_text="Only for cases of this modality (CR, DX, CT, MR, MG); empty: any case.",
    )
    rows = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_GRID)]
    )
    columns = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(MAX_GRID)]
    )

    class Meta:
        ordering = ["study", "priority", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="hanging_unique_name"),
            models.CheckConstraint(
                condition=Q(rows__gte=1, rows__lte=MAX_GRID, columns__gte=1, columns__lte=MAX_GRID),
                name="hanging_grid_size",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows}x{self.columns})"


class HangingRule(models.Model):
    """Which unit of the case one viewport shows. Empty conditions match anything."""

    protocol = models.ForeignKey(HangingProtocol, on_delete=models.CASCADE, related_name="rules")
    viewport = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_GRID * MAX_GRID)],
        help_text="From 1, row by row (1 2 / 3 4 in a 2x2 grid).",
    )
    modality = models.CharField(max_length=16, blank=True, help_text="e.g. CT; empty: any.")
    description = models.CharField(
        max_length=200, blank=True, help_text="Series description to look for; empty: any."
    )
    description_match = models.CharField(
        max_length=10, choices=DescriptionMatch.choices, default=DescriptionMatch.CONTAINS
    )
    view_position = models.CharField(
        max_length=16, blank=True, help_text="e.g. PA, AP, LL, LATERAL; empty: any."
    )
    body_part = models.CharField(max_length=16, blank=True, help_text="e.g. CHEST; empty: any.")
    nth = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Take the n-th unit that matches (2: the second CT series, a prior).",
    )
    required = models.BooleanField(
        default=True,
        help_text="The protocol applies only when this viewport finds its unit; an optional "
        "viewport left without one stays empty.",
    )

    class Meta:
        ordering = ["protocol", "viewport"]
        constraints = [
            models.UniqueConstraint(
                fields=["protocol", "viewport"], name="hanging_rule_unique_viewport"
            ),
        ]

    def __str__(self) -> str:
        return f"viewport {self.viewport}"

    def clean(self) -> None:
        if self.description_match == DescriptionMatch.REGEX and self.description:
            try:
                re.compile(self.description)
            except re.error as error:
                raise ValidationError(
                    {"description": f"not a regular expression: {error}"}
                ) from None
        protocol = getattr(self, "protocol", None)
        if protocol is not None and self.viewport > protocol.rows * protocol.columns:
            raise ValidationError(
                {
                    "viewport": f"viewport {self.viewport} is outside the {protocol.rows}x"
                    f"{protocol.columns} grid (1-{protocol.rows * protocol.columns})"
                }
            )
