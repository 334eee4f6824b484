"""The checklist's building blocks: an item, its tables, and how facts and evidence are worded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from studyplatform.audit.models import AuditEvent
from studyplatform.studies.models import Study

NEEDS_HUMAN = "needs a human answer"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Item:
    """One checklist item: ``number`` names the guideline's item, ``missing`` (non-empty) says
    what a human must add."""

    number: str
    topic: str
    text: str
    answer: list[str]
    evidence: str
    missing: str = ""
    tables: list[Table] = field(default_factory=list)

    @property
    def needs_human(self) -> bool:
        return bool(self.missing)


def when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "not yet"


def event(study: Study, action: str, **filters: Any) -> str:
    """``audit event #N (action)`` of the latest such event of the study, or a note."""
    sequence = (
        AuditEvent.objects.filter(action=action, **filters)
        .filter(**({} if "object_type" in filters else {"study": study}))
        .order_by("-sequence")
        .values_list("sequence", flat=True)
        .first()
    )
    return f"audit event #{sequence} ({action})" if sequence else f"no {action} event recorded"
