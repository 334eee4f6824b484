"""Reading the audit trail: chain verification, the chain head, and a study's data digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from studyplatform.audit.models import Action, AuditEvent, Signature, canonical_json
from studyplatform.audit.services import GENESIS_HASH, to_json
from studyplatform.reading.models import Assignment, ReadFinding
from studyplatform.studies.concealment import seed_commitment
from studyplatform.studies.models import Study, StudyState, Truth


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    hash: str

    def __str__(self) -> str:
        return f"{self.sequence}:{self.hash}"


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain; ``first_bad_sequence`` is None when it is intact."""

    events: int
    head: ChainHead
    first_bad_sequence: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_sequence is None


def chain_head() -> ChainHead:
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return ChainHead(*last) if last else ChainHead(0, GENESIS_HASH)


def verify_chain(expected_head: ChainHead | None = None) -> ChainReport:
    """Walk every event in sequence order and check numbering, links and hashes.

    An edited event fails its own hash; a deleted one leaves a gap in the numbering; a reordered
    one breaks the link to its predecessor. Removing the newest events leaves a valid shorter
    chain: pass the head recorded earlier (a backup manifest, a signature) to detect that.
    """
    events = AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000)
    return _walk(events, expected_head)


def _walk(events: Iterable[AuditEvent], expected_head: ChainHead | None) -> ChainReport:
    expected_sequence, previous_hash, count = 1, GENESIS_HASH, 0
    for event in events:
        problem, bad = "", event.sequence
        if event.sequence != expected_sequence:
            problem = f"expected sequence {expected_sequence}, found {event.sequence}"
            bad = min(expected_sequence, event.sequence)
        elif event.previous_hash != previous_hash:
            problem = "its previous hash does not match the event before it"
        elif event.compute_hash() != event.hash:
            problem = "its content does not match its hash (edited)"
        if problem:
            return ChainReport(count, ChainHead(expected_sequence - 1, previous_hash), bad, problem)
        expected_sequence, previous_hash, count = event.sequence + 1, event.hash, count + 1
    head = ChainHead(expected_sequence - 1, previous_hash)
    if expected_head is not None and expected_head.sequence > 0:
        if head.sequence < expected_head.sequence:
            return ChainReport(
                count,
                head,
                head.sequence + 1,
                f"the chain ends at {head.sequence}, before the expected head "
                f"{expected_head.sequence} (events removed)",
            )
        stored = (
            AuditEvent.objects.filter(sequence=expected_head.sequence)
            .values_list("hash", flat=True)
            .first()
        )
        if stored != expected_head.hash:
            return ChainReport(
                count, head, expected_head.sequence, "its hash differs from the expected head"
            )
    return ChainReport(count, head)


def signature_problems() -> list[str]:
    """Signatures that disagree with the audit event recorded when they were made.

    The event is covered by the hash chain; the signature row is what pages show. An edited
    signature (signer, meaning, digest, time, study) no longer matches its event.
    """
    problems = []
    for signature in Signature.objects.select_related("audit_event", "study").order_by("pk"):
        event = signature.audit_event
        after = event.after if isinstance(event.after, dict) else {}
        recorded = {
            "kind": event.action,
            "signer": event.actor_id,
            "study": event.study_id,
            "meaning": after.get("meaning"),
            "data_sha256": after.get("data_sha256"),
            "signed_at": after.get("signed_at"),
        }
        shown = {
            "kind": signature.kind,
            "signer": signature.signer_id,
            "study": signature.study_id,
            "meaning": signature.meaning,
            "data_sha256": signature.data_sha256,
            "signed_at": to_json(signature.signed_at),
        }
        differ = sorted(key for key in recorded if recorded[key] != shown[key])
        if differ:
            problems.append(
                f"signature {signature.pk} ({signature.kind} of {signature.study}) differs from "
                f"its audit event {event.sequence} in: {', '.join(differ)}"
            )
    return problems


# The digest's version, recorded in each signature's audit event: verify_audit recomputes the
# digests of the signatures made with this version (earlier ones cannot be recomputed).
DIGEST_VERSION = 2


def truth_rows(study: Study) -> list[list[object]]:
    """The study's ground truth as ``[case_id, finding code, present, source]`` rows, in order."""
    rows = (
        Truth.objects.filter(case__study=study)
        .order_by("case__case_id", "finding_type__code")
        .values_list("case__case_id", "finding_type__code", "present", "source")
    )
    return [list(row) for row in rows]


def _sha256(state: object) -> str:
    return hashlib.sha256(canonical_json(state).encode("ascii")).hexdigest()


def truth_digest(study: Study) -> str:
    """sha256 over the study's truth only: what the final-truth signature approves.

    Reads keep coming after the truth is final, so they are not part of it.
    """
    return _sha256({"study": study.slug, "truth": truth_rows(study)})


def study_data_digest(study: Study) -> str:
    """sha256 over a study's truth, allocation, reads (corrections included) and protocol version.

    What the study-lock signature approves. Cheap (ordered value queries) and stable: the same
    data always gives the same digest, so a signature names exactly the data state it approved.
    """
    allocation = Assignment.objects.filter(session__study=study).order_by("pk")
    findings = ReadFinding.objects.filter(read__assignment__session__study=study).order_by(
        "read_id", "finding_type__code"
    )
    state = {
        "study": study.slug,
        "protocol_version": study.protocol_version,
        "truth": truth_rows(study),
        "allocation": list(
            allocation.values_list(
                "pk", "reader__code", "case__case_id", "arm__name", "session__number", "position"
            )
        ),
        "reads": list(
            findings.values_list(
                "read_id",
                "read__assignment_id",
                "read__supersedes_id",
                "finding_type__code",
                "present",
                "confidence",
            )
        ),
    }
    return _sha256(state)


def signature_for(study: Study, kind: str) -> Signature | None:
    return Signature.objects.filter(study=study, kind=kind).select_related("signer").first()


def events_for_study(study: Study) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(study=study).order_by("sequence"))


def allocation_revealed(study: Study) -> bool:
    """Whether the seed and every arm of ``study`` may be shown: locked, or explicitly unblinded.

    Until then the allocation is concealed from everyone working on the study (coordinators,
    statisticians, superusers in the admin): the trail holds only commitments to it.
    """
    if study.state == StudyState.LOCKED:
        return True
    return AuditEvent.objects.filter(study=study, action=Action.UNBLIND).exists()


def recorded_seed_commitment(study: Study) -> str | None:
    """The seed commitment recorded when the study's allocation was (last) made, if any."""
    after = (
        AuditEvent.objects.filter(
            study=study, action=Action.ALLOCATION_CREATE, after__has_key="seed_sha256"
        )
        .order_by("-sequence")
        .values_list("after", flat=True)
        .first()
    )
    return after.get("seed_sha256") if isinstance(after, dict) else None


def seed_reveal(study: Study) -> dict[str, object]:
    """The seed with the check that it hashes to the commitment the trail recorded.

    For the event that reveals it (the lock, an unblinding): ``seed_matches_commitment`` is
    False when the recorded commitment differs, None when none was recorded (an allocation made
    before commitments were recorded).
    """
    recorded = recorded_seed_commitment(study)
    matches = None if recorded is None else recorded == seed_commitment(study.seed)
    return {"seed": study.seed, "seed_matches_commitment": matches}
