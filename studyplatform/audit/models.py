"""The audit trail and electronic signatures.

An AuditEvent is one change, written once: who, what, when, before and after. Events form a hash
chain (each hash covers the previous one), so editing, deleting or reordering a stored event is
detected by ``manage.py verify_audit``; on PostgreSQL a trigger also refuses UPDATE and DELETE on
the table. References to the actor and the study are kept without database constraints, so that
the record outlives what it describes.

A Signature is an electronic signature (21 CFR Part 11 style): the signer re-entered their
password, and the meaning of the signature is stored with it and with its audit event.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import models


class Action:
    """The action names used by the platform (``area.verb``); other strings are allowed."""

    STUDY_CREATE = "study.create"
    STUDY_UPDATE = "study.update"
    STUDY_LOCK = "study.lock"
    STUDY_LOCK_REFUSED = "study.lock_refused"
    ALLOCATION_CREATE = "allocation.create"
    TRUTH_IMPORT = "truth.import"
    IMPORT_REFUSED = "import.refused"
    TRUTH_FINALIZE = "truth.finalize"
    TRUTH_FINALIZE_REFUSED = "truth.finalize_refused"
    READ_SUBMIT = "read.submit"
    READ_CORRECT = "read.correct"
    MODEL_REGISTER = "model.register"
    MODEL_MOVE = "model.move"
    MODEL_INTENDED_USE = "model.intended_use"
    USER_CREATE = "user.create"
    USER_CHANGE = "user.change"
    USER_PASSWORD_CHANGE = "user.password_change"  # noqa: S105 (an action name)
    USER_GROUPS_CHANGE = "user.groups_change"
    USER_PERMISSIONS_CHANGE = "user.permissions_change"
    USER_DELETE = "user.delete"
    USER_LOGIN = "user.login"
    USER_LOGIN_REFUSED = "user.login_refused"
    USER_TOTP_ENROL = "user.totp_enrol"
    USER_TOTP_VERIFY = "user.totp_verify"
    USER_TOTP_REFUSED = "user.totp_refused"
    EXPORT_CREATE = "export.create"
    PROTOCOL_FREEZE = "protocol.freeze"
    PROTOCOL_AMEND = "protocol.amend"
    PROTOCOL_AMEND_REFUSED = "protocol.amend_refused"
    WASHOUT_WAIVE = "session.washout_waived"
    TRAINING_CASES = "case.training"
    TRAINING_START = "session.training_start"
    TRAINING_WAIVE = "reader.training_waived"
    UNBLIND = "study.unblind"
    INTERIM_VIEW = "analysis.interim_view"
    READER_CREATE = "reader.create"
    READER_INVITE = "reader.invite"
    READER_ENROL = "reader.enrol"
    READER_UNENROL = "reader.unenrol"
    READER_GROUPS = "reader.groups"
    SITE_CREATE = "site.create"
    SITE_RENAME = "site.rename"
    SITE_TOKEN_ISSUE = "sitetoken.issue"  # noqa: S105 (an action name)
    SITE_TOKEN_REVOKE = "sitetoken.revoke"  # noqa: S105 (an action name)


def canonical_json(value: Any) -> str:
    """The one serialization that hashes are computed over: sorted keys, no spaces, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


class AuditEvent(models.Model):
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for the system (commands, tasks).",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64, blank=True)
    study = models.ForeignKey(
        "studies.Study",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why, or the meaning of a signature.")
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["study", "sequence"]),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_type}:{self.object_id}"

    def content(self) -> dict[str, Any]:
        """Every recorded field except the own hash, as the hash sees them."""
        return {
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.isoformat(timespec="microseconds"),
            "actor_id": self.actor_id,
            "actor_username": self.actor_username,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "study_id": self.study_id,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "previous_hash": self.previous_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.content()).encode("ascii")).hexdigest()


class Signature(models.Model):
    """A password-confirmed approval with its meaning; never edited, audited when made."""

    class Kind(models.TextChoices):
        STUDY_LOCK = "study.lock", "Lock study"
        TRUTH_FINALIZE = "truth.finalize", "Finalize ground truth"
        PROTOCOL_AMEND = "protocol.amend", "Amend the protocol"

    signer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    meaning = models.CharField(max_length=300)
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="signatures")
    data_sha256 = models.CharField(
        max_length=64, help_text="Digest of the study's data (truth, allocation, reads) signed."
    )
    signed_at = models.DateTimeField()
    audit_event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["signed_at"]
        constraints = [
            # A study is locked and its truth finalized once; its protocol amended many times.
            models.UniqueConstraint(
                fields=["study", "kind"],
                condition=~models.Q(kind="protocol.amend"),
                name="signature_once_per_study",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.study} by {self.signer}"
