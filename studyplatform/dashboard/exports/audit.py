"""The audit trail of a study as CSV (for tools) or one HTML page (for people).

Every event of the study in sequence order, or only those about one object (``--object``):

* ``study``: the events about the study row itself;
* ``TYPE:ID``: TYPE a model's label (``studies.case``) or its short name (``case``, ``read``,
  ``assignment``, ``truth``, ``aimodel``, ...), or any object type the study's trail holds
  (``study.allocation``); ID the object's primary key, or for a case its ID in the manifest.

An unknown type, or an ID that is no object of the study, is an error naming what is wrong.
Until the study is locked or unblinded, seeds and arms in the events' before/after values are
concealed exactly as in the admin (:func:`conceal_seed_and_arms`); the stored chain is untouched
and each row keeps its hashes, so a copy can be checked against ``manage.py verify_audit``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Model, Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from studyplatform.audit.models import AuditEvent
from studyplatform.audit.selectors import allocation_revealed
from studyplatform.audit.services import study_of
from studyplatform.dashboard.exports.cells import neutralize
from studyplatform.studies.concealment import conceal_seed_and_arms
from studyplatform.studies.models import Case, Study

AUDIT_COLUMNS = (
    "sequence",
    "occurred_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "reason",
    "previous_hash",
    "hash",
)


class AuditFilterError(ValueError):
    """An ``--object`` that names no object of the study (the message says why)."""


@dataclass(frozen=True)
class ObjectFilter:
    object_type: str
    object_id: str
    in_study: bool

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_id}"


def _project_models() -> dict[str, type[Model]]:
    found: dict[str, type[Model]] = {}
    for model in apps.get_models():
        if model.__module__.startswith("studyplatform."):
            found[model._meta.label_lower] = model
            found.setdefault(model._meta.model_name or "", model)
    return found


def parse_object(study: Study, text: str) -> ObjectFilter | None:
    """The object ``text`` names (see the module docstring); None for an empty filter."""
    text = text.strip()
    if not text:
        return None
    if text == "study":
        return ObjectFilter(Study._meta.label_lower, str(study.pk), True)
    kind, sep, ident = text.partition(":")
    kind, ident = kind.strip().lower(), ident.strip()
    if not sep or not kind or not ident:
        raise AuditFilterError(
            f"object {text!r}: write 'study' or TYPE:ID (for example case:case-001 or read:12)"
        )
    model = _project_models().get(kind)
    if model is None:
        stored = set(
            AuditEvent.objects.filter(study=study).values_list("object_type", flat=True).distinct()
        )
        if kind in stored:
            return ObjectFilter(kind, ident, True)
        known = sorted(m for m in _project_models() if "." in m)
        raise AuditFilterError(
            f"unknown object type {kind!r}; use a model ({', '.join(known)}) or an object type "
            f"of this study's trail ({', '.join(sorted(stored)) or 'none'})"
        )
    label = model._meta.label_lower
    found: Model | None = None
    if model is Case:
        found = Case.objects.filter(study=study, case_id=ident).first()
    if found is None and ident.isdigit():
        found = model._default_manager.filter(pk=int(ident)).first()
    if found is None:
        raise AuditFilterError(f"no {label} {ident!r} exists")
    owner = study if isinstance(found, Study) and found.pk == study.pk else study_of(found)
    if owner is not None and owner.pk != study.pk:
        raise AuditFilterError(f"{label} {ident!r} is not part of study {study.slug}")
    return ObjectFilter(label, str(found.pk), owner is not None)


def audit_events(study: Study, selected: ObjectFilter | None) -> QuerySet[AuditEvent]:
    """The study's events in sequence order; with ``selected``, those about that object only
    (an object of no study, such as an AI model, with its events of this study or of none)."""
    events = AuditEvent.objects.order_by("sequence")
    if selected is None:
        return events.filter(study=study)
    events = events.filter(object_type=selected.object_type, object_id=selected.object_id)
    if selected.in_study:
        return events.filter(study=study)
    return events.filter(Q(study=study) | Q(study__isnull=True))


def _rows(study: Study, selected: ObjectFilter | None) -> Iterator[dict[str, Any]]:
    hide = not allocation_revealed(study)
    for event in audit_events(study, selected).iterator(chunk_size=2000):
        before, after = event.before, event.after
        if hide:
            before, after = conceal_seed_and_arms(before), conceal_seed_and_arms(after)
        yield (
            {
                "sequence": event.sequence,
                "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
                "actor": event.actor_username or "system",
                "action": event.action,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "before": "" if before is None else json.dumps(before, sort_keys=True),
                "after": "" if after is None else json.dumps(after, sort_keys=True),
                "reason": event.reason,
                "previous_hash": event.previous_hash,
                "hash": event.hash,
            }
        )


def audit_csv(
    study: Study, selected: ObjectFilter | None, *, rows_per_chunk: int = 2000
) -> Iterator[str]:
    """One row per event (AUDIT_COLUMNS), header first, ``rows_per_chunk`` rows a chunk (the
    trail streams); before/after as JSON text, formula-like cells neutralized."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=AUDIT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for n, row in enumerate(_rows(study, selected), start=1):
        writer.writerow({key: neutralize(value) for key, value in row.items()})
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def audit_html(study: Study, selected: ObjectFilter | None) -> str:
    """The same events as one self-contained HTML page."""
    return render_to_string(
        "dashboard/audit_file.html",
        {
            "study": study,
            "rows": list(_rows(study, selected)),
            "selected": selected,
            "concealed": not allocation_revealed(study),
            "generated_at": timezone.now(),
        },
    )
