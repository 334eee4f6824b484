"""The one enforcement point for a study's frozen states: lock, final truth, frozen protocol.

Every service that changes a study's data calls :func:`lock_study_for_write` inside its write
transaction, before it writes anything::

    with transaction.atomic():
        study = lock_study_for_write(study, truth=True)   # refuses, or holds the row lock
        ... change the data, record() the audit event ...

On PostgreSQL the call takes a row lock on the study (``FOR SHARE``: concurrent writers do not
wait for each other, but signing the lock or the final truth, which takes ``FOR UPDATE``, waits
for every writer in flight, and every later writer sees the signature). So no write can commit
after a signature that did not see it, whatever door it came through (web, admin, API, command,
task). The states are read from the locked row, never from the caller's possibly stale object.

The errors subclass PermissionDenied: a view that does not catch them answers 403, never 500.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import connection

from studyplatform.studies.models import Case, Site, Study, StudyState


class FrozenStudyError(PermissionDenied):
    """A change that the study's state no longer allows was refused."""


class StudyLockedError(FrozenStudyError):
    """A change to a locked study was refused."""


class TruthFinalizedError(FrozenStudyError):
    """A change to finalized ground truth was refused."""


class ProtocolFrozenError(FrozenStudyError):
    """A change to the protocol of an opened study, outside a signed amendment, was refused."""


def lock_study_for_write(
    study: Study | int,
    *,
    truth: bool = False,
    protocol: bool = False,
    exclusive: bool = False,
) -> Study:
    """Lock the study's row for the rest of the transaction and refuse a forbidden change.

    Parameters
    ----------
    study : Study or int
        The study (or its primary key) whose data the caller is about to change.
    truth : bool
        The change touches ground truth: refused once the truth is finalized.
    protocol : bool
        The change touches the protocol (design, arms, finding types, scale, thresholds, model,
        washout, endpoints): refused once the study has opened (amendments use their own path).
    exclusive : bool
        Take ``FOR UPDATE`` instead of ``FOR SHARE`` (the signing services, which must wait for
        every writer in flight).

    Returns the freshly read, locked study. Raises StudyLockedError, TruthFinalizedError or
    ProtocolFrozenError; must be called inside ``transaction.atomic()``.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("lock_study_for_write() must be called inside transaction.atomic()")
    pk = study.pk if isinstance(study, Study) else int(study)
    if connection.vendor == "postgresql":
        mode = "UPDATE" if exclusive else "SHARE"
        # The table name comes from the model, the mode from the two literals above.
        query = f"SELECT * FROM {Study._meta.db_table} WHERE id = %s FOR {mode}"  # noqa: S608
        found = list(Study.objects.raw(query, [pk]))
    else:
        # SQLite serializes writers on the whole database: the transaction's first write waits
        # for any other; select_for_update is accepted and ignored there.
        found = list(Study.objects.select_for_update().filter(pk=pk))
    if not found:
        raise Study.DoesNotExist(f"study {pk} does not exist")
    current = found[0]
    if current.state == StudyState.LOCKED:
        when = f" on {current.locked_at:%Y-%m-%d %H:%M} UTC" if current.locked_at else ""
        raise StudyLockedError(
            f"study {current.slug} is locked (study-lock signature{when}): it accepts no change"
        )
    if truth and current.truth_finalized_at is not None:
        raise TruthFinalizedError(
            f"the ground truth of study {current.slug} was finalized by electronic signature on "
            f"{current.truth_finalized_at:%Y-%m-%d %H:%M} UTC: it accepts no change"
        )
    if protocol and current.protocol_version > 0:
        raise ProtocolFrozenError(
            f"the protocol of study {current.slug} is frozen (version {current.protocol_version}) "
            "since it opened: change it by a signed protocol amendment"
        )
    return current


def lock_site_for_write(site: Site | int) -> list[Study]:
    """Lock every study that has cases at ``site`` before the site is changed or deleted.

    Sites are shared between studies: a site whose cases belong to a locked study is part of
    that study's frozen data (its code and name appear in the analysis and the exports), so it is
    refused like any other change to the study. Studies are locked in primary-key order, so two
    writers never wait for each other crosswise. Must be called inside ``transaction.atomic()``.
    """
    pk = site.pk if isinstance(site, Site) else int(site)
    studies = set(Case.objects.filter(site_id=pk).values_list("study_id", flat=True).order_by())
    return [lock_study_for_write(study_pk) for study_pk in sorted(studies)]
