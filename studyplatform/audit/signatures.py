"""Electronic signatures: locking a study, finalizing its ground truth, amending its protocol.

Each needs the signer to re-enter their password; the signature stores who, when, the meaning
the signer approved and a digest of the study's data, and is itself an audit event. A wrong
password is refused and audited as a refused attempt.

What the signatures freeze is enforced in one place, ``studyplatform.studies.guards``, inside
the write transaction of every service that changes a study's data. Signing takes the study's
row exclusively through the same guard: it waits for every writer in flight (they hold the row
shared) to commit, so the digest sees all of them, and every later writer sees the signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from studyplatform.audit.models import Action, Signature
from studyplatform.audit.selectors import (
    DIGEST_VERSION,
    seed_reveal,
    signature_for,
    study_data_digest,
    truth_digest,
    truth_rows,
)
from studyplatform.audit.services import record, snapshot
from studyplatform.studies.guards import (
    StudyLockedError,
    TruthFinalizedError,
    lock_study_for_write,
)
from studyplatform.studies.models import (
    FindingType,
    MemberRole,
    Study,
    StudyState,
)
from studyplatform.studies.services.amendment import InvalidAmendmentError, apply_amendment
from studyplatform.studies.services.protocol import protocol_content, store_protocol_version

LOCK_MEANING = "I approve locking this study for analysis."
FINALIZE_TRUTH_MEANING = "I approve this ground truth as final for analysis."
AMEND_MEANING = "I approve this amendment of the protocol, for the reason given."

_REQUIRED_PERMISSION = {
    Signature.Kind.STUDY_LOCK: "studies.lock_study",
    Signature.Kind.TRUTH_FINALIZE: "studies.change_truth",
    Signature.Kind.PROTOCOL_AMEND: "studies.change_study",
}
_REFUSED_ACTION = {
    Signature.Kind.STUDY_LOCK: Action.STUDY_LOCK_REFUSED,
    Signature.Kind.TRUTH_FINALIZE: Action.TRUTH_FINALIZE_REFUSED,
    Signature.Kind.PROTOCOL_AMEND: Action.PROTOCOL_AMEND_REFUSED,
}


class SignatureRefusedError(PermissionDenied):
    """The signer is not allowed to sign, or the password was wrong."""


class SignatureStateError(ValidationError):
    """The study is not in a state that this signature can approve."""


def may_sign(user: AbstractBaseUser | AnonymousUser, study: Study, kind: str) -> bool:
    """Superusers, and coordinators of this study who hold the signature's permission."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    coordinates = study.has_member(user.pk, MemberRole.COORDINATOR)
    permission = _REQUIRED_PERMISSION[Signature.Kind(kind)]
    return coordinates and isinstance(user, PermissionsMixin) and user.has_perm(permission)


def _authenticate_signer(
    *, user: AbstractBaseUser, password: str, study: Study, kind: Signature.Kind, meaning: str
) -> None:
    """Refuse (and audit the refusal) unless the user may sign and the password is right."""
    if not may_sign(user, study, kind):
        raise SignatureRefusedError(f"{user.get_username()} may not sign this for {study.slug}")
    if user.check_password(password):
        return
    refused = _REFUSED_ACTION[kind]
    # Its own transaction: the refused attempt stays on record although the signature fails.
    with transaction.atomic():
        record(
            actor=user,
            action=refused,
            obj=study,
            after={"refused": "wrong password"},
            reason=meaning,
        )
    raise SignatureRefusedError("The password is not correct: nothing was signed.")


def _sign(
    *,
    user: AbstractBaseUser,
    study: Study,
    kind: Signature.Kind,
    meaning: str,
    data_sha256: str,
    evidence: dict[str, object] | None = None,
) -> Signature:
    """The signature row, whose audit event the caller has just changed the data under.

    ``evidence`` (the signed rows themselves, compactly) goes into the chained event, so that
    verify_audit can name the first record that differs from what was signed.
    """
    now = timezone.now()
    event = record(
        actor=user,
        action=str(kind),
        obj=study,
        after={
            "meaning": meaning,
            "data_sha256": data_sha256,
            "signed_at": now,
            "digest_version": DIGEST_VERSION,
            **(evidence or {}),
        },
        reason=meaning,
    )
    return Signature.objects.create(
        signer_id=user.pk,
        kind=kind,
        meaning=meaning,
        study=study,
        data_sha256=data_sha256,
        signed_at=now,
        audit_event=event,
    )


def lock_study(
    *, study: Study, user: AbstractBaseUser, password: str, meaning: str = LOCK_MEANING
) -> Signature:
    """Lock an open study for analysis: from then on it accepts no change."""
    kind = Signature.Kind.STUDY_LOCK
    _authenticate_signer(user=user, password=password, study=study, kind=kind, meaning=meaning)
    with transaction.atomic():
        try:
            locked = lock_study_for_write(study, exclusive=True)
        except StudyLockedError as error:
            raise SignatureStateError(f"{error}: only an open study can be locked") from None
        if locked.state != StudyState.OPEN:
            raise SignatureStateError(
                f"study {locked.slug} is {locked.get_state_display().lower()}: only an open "
                "study can be locked"
            )
        before = snapshot(locked)
        digest = study_data_digest(locked)
        locked.state = StudyState.LOCKED
        locked.locked_at = timezone.now()
        locked.save(update_fields=["state", "locked_at"])
        record(
            actor=user,
            action=Action.STUDY_UPDATE,
            obj=locked,
            before={"state": before["state"], "locked_at": before["locked_at"]},
            # Locking reveals the concealed seed, checked against its recorded commitment.
            after={"state": locked.state, "locked_at": locked.locked_at, **seed_reveal(locked)},
            reason=meaning,
        )
        signature = _sign(user=user, study=locked, kind=kind, meaning=meaning, data_sha256=digest)
    study.refresh_from_db(fields=["state", "locked_at"])
    return signature


def _missing_truth(study: Study) -> int:
    """How many case x finding type pairs have no truth."""
    finding_types = FindingType.objects.filter(study=study).count()
    counts = study.cases.annotate(n=Count("truths")).values_list("n", flat=True)
    return sum(max(finding_types - n, 0) for n in counts)


def finalize_truth(
    *, study: Study, user: AbstractBaseUser, password: str, meaning: str = FINALIZE_TRUTH_MEANING
) -> Signature:
    """Finalize a study's ground truth: complete, signed, and from then on unchangeable."""
    kind = Signature.Kind.TRUTH_FINALIZE
    _authenticate_signer(user=user, password=password, study=study, kind=kind, meaning=meaning)
    with transaction.atomic():
        try:
            locked = lock_study_for_write(study, truth=True, exclusive=True)
        except TruthFinalizedError:
            previous = signature_for(study, kind)
            by = (
                f" by {previous.signer} on {previous.signed_at:%Y-%m-%d %H:%M} UTC"
                if previous is not None
                else ""
            )
            raise SignatureStateError(
                f"the ground truth of study {study.slug} was already finalized{by}"
            ) from None
        except StudyLockedError as error:
            raise SignatureStateError(str(error)) from None
        if not locked.cases.exists():
            raise SignatureStateError(f"study {locked.slug} has no cases: there is no truth")
        missing = _missing_truth(locked)
        if missing:
            raise SignatureStateError(
                f"the ground truth of study {locked.slug} is incomplete: {missing} case x "
                "finding type pairs have no truth"
            )
        rows = truth_rows(locked)
        signature = _sign(
            user=user,
            study=locked,
            kind=kind,
            meaning=meaning,
            data_sha256=truth_digest(locked),
            evidence={"truth": rows},
        )
        Study.objects.filter(pk=locked.pk).update(truth_finalized_at=signature.signed_at)
    study.refresh_from_db(fields=["truth_finalized_at"])
    return signature


def amend_protocol(
    *,
    study: Study,
    user: AbstractBaseUser,
    password: str,
    reason: str,
    changes: Mapping[str, Any],
    meaning: str = AMEND_MEANING,
) -> Signature:
    """Amend the protocol of an open study: a new, signed protocol version with its reason.

    ``changes`` is described in :func:`studyplatform.studies.services.amendment.apply_amendment`.
    The signature's data digest is the new protocol's sha256. Only an open study is amended: a
    draft's protocol is edited directly, a locked study accepts no change. Raises
    SignatureRefusedError (not allowed, wrong password: audited), InvalidAmendmentError (the
    changes; nothing changed) or SignatureStateError (draft or locked).
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidAmendmentError("an amendment needs a reason")
    kind = Signature.Kind.PROTOCOL_AMEND
    _authenticate_signer(user=user, password=password, study=study, kind=kind, meaning=meaning)
    with transaction.atomic():
        try:
            locked = lock_study_for_write(study, exclusive=True)
        except StudyLockedError as error:
            raise SignatureStateError(f"{error}: a locked study cannot be amended") from None
        if locked.state != StudyState.OPEN or not locked.protocol_frozen:
            raise SignatureStateError(
                f"study {locked.slug} is a draft: edit its protocol directly; only an open "
                "study's protocol is amended"
            )
        before = protocol_content(locked)
        apply_amendment(study=locked, changes=changes, version=locked.protocol_version + 1)
        if protocol_content(locked) == before:
            raise InvalidAmendmentError("the amendment changes nothing in the protocol")
        protocol = store_protocol_version(
            study=locked, actor=user, reason=reason, action=Action.PROTOCOL_AMEND
        )
        signature = _sign(
            user=user,
            study=locked,
            kind=kind,
            meaning=f"{meaning} (version {protocol.version}: {reason})"[:300],
            data_sha256=protocol.sha256,
        )
    study.refresh_from_db()
    return signature
