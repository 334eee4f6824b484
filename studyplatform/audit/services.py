"""Writing the audit trail: ``record`` appends one event to the hash chain.

How other services use it (reads, allocation, imports, exports, model registration)::

    from studyplatform.audit.models import Action
    from studyplatform.audit.services import record, snapshot

    with transaction.atomic():
        before = snapshot(obj)            # a dict of the stored fields, JSON-ready
        ... change and save obj ...
        record(actor=user, action=Action.STUDY_UPDATE, obj=obj, study=study,
               before=before, after=snapshot(obj), reason="why, if the user gave one")

- ``actor`` is the user who asked for the change, or None for the system (a command, a task).
- ``obj`` names what changed (its model label and primary key); or pass ``object_type`` and
  ``object_id`` for something that is not one row (``object_type="study.allocation"``).
- ``study`` defaults to the study ``obj`` belongs to when that can be found (``obj.study``,
  ``obj.case.study``, ``obj.session.study``, ...).
- ``before`` / ``after`` are JSON-serializable values (datetimes, decimals and UUIDs are turned
  into strings first); keep them small: the fields that changed, counts, digests, not whole
  files. For a bulk change (an import of 500 truths) record one event with a summary.
- Call ``record`` inside the transaction that makes the change, as its last statement: the event
  commits or rolls back with the change, and the chain lock it takes (PostgreSQL: an advisory
  transaction lock) is then held only for the rest of that transaction.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from studyplatform.audit.models import AuditEvent
from studyplatform.studies.models import Study

GENESIS_HASH = "0" * 64
# Any constant: the key of the PostgreSQL advisory lock that serializes appends to the chain.
_CHAIN_LOCK_KEY = 0x5A0D1_7C4A1

# Where a model's study is found, tried in order (``a__b`` walks attributes a then b).
_STUDY_PATHS = (
    "study",
    "case__study",
    "session__study",
    "assignment__session__study",
    "protocol__study",
)


def study_of(obj: models.Model) -> Study | None:
    """The study an object belongs to, or None (a site, a user, an AI model)."""
    if isinstance(obj, Study):
        return obj
    for path in _STUDY_PATHS:
        value: Any = obj
        for name in path.split("__"):
            value = getattr(value, name, None)
            if value is None:
                break
        if isinstance(value, Study):
            return value
    return None


def _portable(value: Any) -> Any:
    """Numbers that every JSON column stores and reads back unchanged.

    PostgreSQL's jsonb keeps numbers as decimals: 1e+16 reads back as the integer
    10000000000000000, -0.0 as 0.0, and NaN cannot be stored at all. Changing them here keeps the
    hash of an event equal before and after the database has stored it.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0.0:
            return 0.0
        return int(value) if abs(value) >= 1e16 else value
    if isinstance(value, list):
        return [_portable(item) for item in value]
    if isinstance(value, dict):
        return {key: _portable(item) for key, item in value.items()}
    return value


def to_json(value: Any) -> Any:
    """``value`` as it will read back from a JSON column (dates and decimals as strings)."""
    if value is None:
        return None
    return _portable(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The stored fields of one row (foreign keys as IDs, files as their names), JSON-ready."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        value = field.value_from_object(obj)
        if isinstance(field, models.FileField):
            value = value.name if value else ""
        data[field.attname] = value
    return dict(to_json(data))


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    elif connection.vendor == "sqlite":
        # Take SQLite's write lock before reading the chain head: a deferred transaction that
        # reads first and writes later can fail to upgrade its lock when another writer is
        # waiting. A statement that writes nothing still takes the lock.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE 1 = 0")


def record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    study: Study | None = None,
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the audit chain and return it (see the module docstring)."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        if study is None:
            study = study_of(obj)
    if not object_type:
        raise ValueError("record() needs obj or object_type")
    user = actor if actor is not None and actor.is_authenticated else None
    with transaction.atomic():
        _lock_chain()
        head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
        sequence, previous_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        event = AuditEvent(
            sequence=sequence,
            occurred_at=timezone.now(),
            actor_id=user.pk if user is not None else None,
            actor_username=user.get_username() if user is not None else "",
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            study_id=study.pk if study is not None else None,
            before=to_json(before),
            after=to_json(after),
            reason=reason,
            previous_hash=previous_hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event
