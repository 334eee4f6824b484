"""Store the inputs an import refused, once each, audited (see ``models.refusals``).

Every door that takes cases (``import_cases``, ``import_dicomweb``, STOW-RS) reports what it
refused with a :class:`~studyplatform.studies.importing.Problem` each; :func:`record_refusals`
keeps them, so the submission checklist and the flow diagram count them from the database. A
locked study is read-only: nothing is recorded for it (its import was refused whole anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.studies.guards import StudyLockedError, lock_study_for_write
from studyplatform.studies.importing import Problem
from studyplatform.studies.models import ImportRefusal, RefusalSource, Study

__all__ = ["record_refusals"]


def _fingerprint(source: str, item: str, reason: str) -> str:
    return hashlib.sha256(f"{source}\x00{item}\x00{reason}".encode()).hexdigest()


def record_refusals(
    *,
    study: Study,
    source: RefusalSource,
    problems: Iterable[Problem],
    actor: AbstractBaseUser | AnonymousUser | None = None,
    via: str = "",
) -> list[ImportRefusal]:
    """Store each refused input not stored before; return the new rows (each one audited).

    The same input refused for the same reason again (an import run twice) adds nothing.
    """
    found = {_fingerprint(source, p.where[:500], p.reason): p for p in problems}
    if not found:
        return []
    user = actor if isinstance(actor, get_user_model()) else None
    with transaction.atomic():
        try:
            lock_study_for_write(study)
        except StudyLockedError:
            return []
        known = set(
            ImportRefusal.objects.filter(study=study, fingerprint__in=list(found)).values_list(
                "fingerprint", flat=True
            )
        )
        new = [
            ImportRefusal.objects.create(
                study=study,
                source=source,
                item=p.where[:500],
                reason=p.reason,
                actor=user,
                via=via[:200],
                fingerprint=key,
            )
            for key, p in found.items()
            if key not in known
        ]
        for refusal in new:
            record(
                actor=actor,
                action=Action.IMPORT_REFUSED,
                obj=refusal,
                study=study,
                after={"source": source, "item": refusal.item, "reason": refusal.reason},
                reason=via,
            )
    return new
