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

from studyplatform.studies.models import Study, StudyState


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
        raise StudyLockedError(f"study {current.slug} is locked: it accepts no change")
    if truth and current.truth_finalized_at is not None:
        raise TruthFinalizedError(
            f"the ground truth of study {current.slug} was finalized on "
            f"{current.truth_finalized_at:%Y-%m-%d %H:%M} UTC: it accepts no change"
        )
    if protocol and current.protocol_version > 0:
        raise ProtocolFrozenError(
            f"the protocol of study {current.slug} is frozen (version {current.protocol_version}) "
            "since it opened: change it by a signed protocol amendment"
        )
    return current
