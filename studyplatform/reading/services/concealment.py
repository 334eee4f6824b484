"""Unblinding a running study: revealing its seed and every arm before the lock, on the record.

Normally the allocation stays concealed until the study is locked. A safety review or a data
monitoring committee may need it earlier: the study's statistician (or a superuser) unblinds it
with a reason. The audit event reveals the seed and checks it against the commitment recorded
at randomization; from then on the admin and the dashboard show seeds and arms of that study.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.selectors import allocation_revealed, seed_reveal
from studyplatform.audit.services import record as audit_record
from studyplatform.reading.services.errors import AllocationError
from studyplatform.studies.models import MemberRole, Study, StudyState

__all__ = ["may_unblind", "unblind_study"]


def may_unblind(user: User, study: Study) -> bool:
    """Superusers and the study's statisticians; never its coordinators."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return study.has_member(user.pk, MemberRole.STATISTICIAN)


def unblind_study(*, study: Study, user: User, reason: str) -> Study:
    """Reveal the allocation of an open study before its lock; audited with the reason.

    Raises PermissionDenied for anyone but a superuser or the study's statistician, and
    AllocationError for an empty reason, a study that is not open, or one already unblinded.
    """
    if not may_unblind(user, study):
        raise PermissionDenied(
            f"only a superuser or a statistician of study {study.slug!r} may unblind it"
        )
    reason = reason.strip()
    if not reason:
        raise AllocationError("unblinding needs a reason (it is recorded in the audit trail)")
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        if study.state != StudyState.OPEN:
            raise AllocationError(
                f"study {study.slug!r} is {study.state}: only an open study is unblinded "
                "(a locked one shows its allocation already)"
            )
        if allocation_revealed(study):
            raise AllocationError(f"study {study.slug!r} is unblinded already")
        revealed = seed_reveal(study)
        if revealed["seed_matches_commitment"] is False:
            raise AllocationError(
                f"the seed of study {study.slug!r} does not hash to the commitment recorded at "
                "randomization: the seed was changed after the allocation was made"
            )
        audit_record(actor=user, action=Action.UNBLIND, obj=study, after=revealed, reason=reason)
    return study
