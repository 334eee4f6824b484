"""Inputs refused at import: what came in, from where, why it was refused, when, and by whom.

Append-only: a refusal is recorded once (``fingerprint``: its source, item and reason), so an
import run again adds nothing; nothing changes or deletes it (the admin shows it read-only, and
on PostgreSQL a trigger refuses UPDATE and DELETE: migration 0012).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RefusalSource(models.TextChoices):
    FILE = "file", "File import (import_cases)"
    DICOMWEB = "dicomweb", "DICOMweb archive (import_dicomweb)"
    STOW = "stow", "STOW-RS push"
    API = "api", "Arrival API"


class ImportRefusal(models.Model):
    study = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="import_refusals"
    )
    source = models.CharField(max_length=10, choices=RefusalSource.choices)
    item = models.CharField(
        max_length=500,
        help_text="The file name, manifest line, case ID or DICOM UID that was refused.",
    )
    reason = models.TextField()
    refused_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    via = models.CharField(max_length=200, blank=True, help_text="The command or the site token.")
    fingerprint = models.CharField(max_length=64, editable=False)

    class Meta:
        ordering = ["study", "refused_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "fingerprint"], name="importrefusal_unique_fingerprint"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item}: {self.reason[:60]}"
