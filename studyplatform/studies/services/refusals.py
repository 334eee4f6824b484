"""Store the inputs an import refused, once each, audited (see ``models.refusals``).

Every door that takes cases (``import_cases``, ``import_dicomweb``, STOW-RS, the arrival API)
reports what it refused with a :class:`~studyplatform.studies.importing.Problem` each;
:func:`record_refusals` keeps them, so the submission checklist and the flow diagram count them
from the database. A locked study is read-only: nothing is recorded for it (its import was
refused whole anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.studies.guards import StudyLockedError, lock_study_for_write
from studyplatform.studies.importing import Problem
from studyplatform.studies.models import ImportRefusal, RefusalSource, Study

__all__ = ["record_refusals"]


def _text(value: str) -> str:
    """``value`` as PostgreSQL stores text: NUL and lone surrogates (sent data) escaped."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


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

    The same input refused for the same reason again (an import run twice, or the same request
    sent twice at once) adds nothing.
    """
    cleaned = [Problem(_text(p.where)[:500], _text(p.reason)) for p in problems]
    found = {_fingerprint(source, p.where, p.reason): p for p in cleaned}
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
        new = []
        for key, p in found.items():
            if key in known:
                continue
            try:
                with transaction.atomic():
                    refusal = ImportRefusal.objects.create(
                        study=study,
                        source=source,
                        item=p.where,
                        reason=p.reason,
                        actor=user,
                        via=_text(via)[:200],
                        fingerprint=key,
                    )
            except IntegrityError:
                # The same refusal, stored meanwhile by a request sent at the same moment (the
                # study's row lock is shared between writers): the database keeps one.
                continue
            new.append(refusal)
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
