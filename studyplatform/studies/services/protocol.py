"""A study's protocol: what it promised before it opened, frozen then, changed only by amendment.

``protocol_content`` is the whole protocol as one JSON object; ``freeze_protocol`` stores it as
version 1 when the study opens. Amendments (a signed new version) go through
``studyplatform.audit.signatures.amend_protocol``, which calls ``store_protocol_version``.
The seed is not part of the content: the allocation stays concealed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from studyplatform.audit.models import Action, canonical_json
from studyplatform.audit.services import record, to_json
from studyplatform.studies.models import Protocol, Study

__all__ = [
    "describe_changes",
    "freeze_protocol",
    "protocol_content",
    "protocol_sha256",
    "store_protocol_version",
]


def protocol_content(study: Study) -> dict[str, Any]:
    """The protocol of ``study`` as it stands in the database (JSON-ready, canonical order)."""
    return dict(
        to_json(
            {
                "design": study.design,
                "arms": [
                    {"name": a.name, "label": a.label, "shows_ai": a.shows_ai}
                    for a in study.arms.order_by("order", "name")
                ],
                "finding_types": [
                    {
                        "code": f.code,
                        "name": f.name,
                        "clinically_significant": f.clinically_significant,
                        "ai_threshold": f.ai_threshold,
                        "introduced_in": f.introduced_in,
                    }
                    for f in study.finding_types.order_by("order", "code")
                ],
                "rating_scale": study.rating_scale,
                "contradiction_rule": study.contradiction_rule,
                "ai_model": {
                    "name": study.ai_model_name,
                    "version": study.ai_model_version,
                    "sha256": study.ai_model_sha256,
                }
                if study.ai_model_name
                else None,
                "washout_days": study.washout_days,
                "split_plot_groups": study.split_plot_groups,
                "readers_per_case": study.readers_per_case,
                "primary_endpoint": study.primary_endpoint,
                "ni_margin": study.ni_margin,
                "froc_rule": study.froc_rule,
                "froc_distance_px": study.froc_distance_px,
                "training_shows_ai": study.training_shows_ai,
            }
        )
    )


def protocol_sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode("ascii")).hexdigest()


def store_protocol_version(
    *, study: Study, actor: AbstractBaseUser | None, reason: str, action: str
) -> Protocol:
    """Store the study's current protocol as its next version and audit it.

    Call inside the transaction that changed the study (after ``lock_study_for_write``).
    """
    content = protocol_content(study)
    version = study.protocol_version + 1
    protocol = Protocol.objects.create(
        study=study,
        version=version,
        content=content,
        sha256=protocol_sha256(content),
        reason=reason,
        created_at=timezone.now(),
        created_by_id=actor.pk if actor is not None else None,
    )
    Study.objects.filter(pk=study.pk).update(protocol_version=version)
    study.protocol_version = version
    record(
        actor=actor,
        action=action,
        obj=protocol,
        study=study,
        after={"version": version, "sha256": protocol.sha256, "content": content},
        reason=reason,
    )
    return protocol


def freeze_protocol(*, study: Study, actor: AbstractBaseUser | None) -> Protocol:
    """Freeze version 1 of the protocol (``open_study`` calls this in its transaction)."""
    if study.protocol_version > 0:
        existing = Protocol.objects.get(study=study, version=study.protocol_version)
        return existing
    return store_protocol_version(
        study=study, actor=actor, reason="opened for reading", action=Action.PROTOCOL_FREEZE
    )


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict) and "name" in value:
        return " ".join(str(value.get(k) or "") for k in ("name", "version")).strip()
    return str(value)


# A field whose name, spaced out, would not read as words.
_LABELS = {"training_shows_ai": "training shows the AI"}


def describe_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two versions' contents, one sentence per change, in field order."""
    changes = []
    old_types = {f["code"]: f for f in before.get("finding_types", [])}
    new_types = {f["code"]: f for f in after.get("finding_types", [])}
    for code, new in new_types.items():
        old = old_types.get(code)
        if old is None:
            threshold = new.get("ai_threshold")
            changes.append(
                f"finding type {code} ({new.get('name')}) added"
                f"{', clinically significant' if new.get('clinically_significant') else ''}"
                f"{f', AI threshold {threshold}' if threshold is not None else ''}"
            )
            continue
        for key, label in (
            ("clinically_significant", "clinically significant"),
            ("ai_threshold", "AI threshold"),
            ("name", "name"),
        ):
            if old.get(key) != new.get(key):
                changes.append(
                    f"{code}: {label} {_show(old.get(key))} \u2192 {_show(new.get(key))}"
                )
    changes += [f"finding type {code} removed" for code in old_types if code not in new_types]
    for key in after:
        if key != "finding_types" and before.get(key) != after.get(key):
            label = _LABELS.get(key, key.replace("_", " "))
            changes.append(f"{label}: {_show(before.get(key))} \u2192 {_show(after.get(key))}")
    return changes
