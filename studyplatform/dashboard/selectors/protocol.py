"""A study's protocol for the dashboard and the analysis: the version in force and its history.

The analysis follows the protocol in force (significance and AI thresholds of its finding types)
and names its version and digest; the dashboard lists every amendment with what it changed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from studyplatform.dashboard.selectors.longframe import ai_thresholds
from studyplatform.studies.models import Protocol, Study
from studyplatform.studies.services.protocol import (
    describe_changes,
    protocol_content,
    protocol_sha256,
)


@dataclass(frozen=True)
class ProtocolInForce:
    """The protocol an analysis follows; ``version`` 0 is a draft's, not frozen yet."""

    version: int
    sha256: str
    content: dict[str, Any]

    @property
    def finding_types(self) -> list[dict[str, Any]]:
        return list(self.content.get("finding_types", []))

    @property
    def primary_endpoint(self) -> str:
        """The primary endpoint; the AUC where a version predates the field."""
        return str(self.content.get("primary_endpoint") or "auc")

    @property
    def ni_margin(self) -> float | None:
        """The non-inferiority margin on the primary endpoint (``None``: superiority)."""
        margin = self.content.get("ni_margin")
        return None if margin is None else float(margin)

    def significant(self) -> list[str]:
        return [f["code"] for f in self.finding_types if f.get("clinically_significant")]

    def thresholds(self, study: Study) -> dict[str, float]:
        """Each finding type's AI threshold: the protocol's, else the pinned model's.

        The one rule of ``ai_thresholds``: a finding type's threshold is stored with the
        protocol version that set it, so the study's finding types hold this version's values.
        """
        return ai_thresholds(study, [f["code"] for f in self.finding_types])


def protocol_in_force(study: Study) -> ProtocolInForce:
    stored = Protocol.objects.filter(study=study, version=study.protocol_version).first()
    if stored is not None:
        return ProtocolInForce(stored.version, stored.sha256, dict(stored.content))
    content = protocol_content(study)
    return ProtocolInForce(study.protocol_version, protocol_sha256(content), content)


@dataclass(frozen=True)
class Amendment:
    version: int
    signed_at: datetime
    signer: str
    reason: str
    changes: list[str]


@dataclass(frozen=True)
class ProtocolHistory:
    version: int
    sha256: str
    frozen_at: datetime | None
    amendments: list[Amendment] = field(default_factory=list)


def protocol_history(study: Study) -> ProtocolHistory:
    """The version in force, when version 1 froze, and each amendment with what it changed."""
    versions = list(
        Protocol.objects.filter(study=study).select_related("created_by").order_by("version")
    )
    amendments = [
        Amendment(
            version=new.version,
            signed_at=new.created_at,
            signer=new.created_by.get_username() if new.created_by else "system",
            reason=new.reason,
            changes=describe_changes(old.content, new.content),
        )
        for old, new in itertools.pairwise(versions)
    ]
    current = protocol_in_force(study)
    return ProtocolHistory(
        version=current.version,
        sha256=current.sha256,
        frozen_at=versions[0].created_at if versions else None,
        amendments=amendments[::-1],
    )
