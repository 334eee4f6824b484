"""Recomputing what was signed: the data of every locked study and every final truth.

A signature's digest says *that* the data changed; the audit events say *what* it was. Each read
and correction was recorded, findings included, by a hash-chained event when it was submitted,
and the final-truth event holds the truth rows it approved; so a record that differs from its
event, a read without one, a read dated after the lock, or an allocation that no longer
fingerprints to its record is named, the first one per signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from studyplatform.audit.models import Action, AuditEvent, Signature
from studyplatform.audit.selectors import (
    DIGEST_VERSION,
    study_data_digest,
    truth_digest,
    truth_rows,
)
from studyplatform.audit.services import to_json
from studyplatform.reading.models import AllocationRecord, Assignment, Read, ReadFinding
from studyplatform.reading.services.allocation import verify_allocation
from studyplatform.reading.services.errors import AllocationError
from studyplatform.studies.models import Study

_SIGNED_DATA = (Signature.Kind.STUDY_LOCK, Signature.Kind.TRUTH_FINALIZE)


def signed_data_problems() -> tuple[int, list[str]]:
    """Recompute every signed digest; return how many were checked and the problems found."""
    checked, problems = 0, []
    signatures = (
        Signature.objects.filter(kind__in=_SIGNED_DATA)
        .select_related("study", "audit_event")
        .order_by("pk")
    )
    for signature in signatures:
        after = signature.audit_event.after if isinstance(signature.audit_event.after, dict) else {}
        if after.get("digest_version") != DIGEST_VERSION:
            continue  # signed before digests were recomputable: the chain still covers it
        checked += 1
        if signature.kind == Signature.Kind.TRUTH_FINALIZE:
            problem = _final_truth_problem(signature.study, signature.audit_event)
        else:
            problem = _locked_study_problem(signature.study, signature)
        if problem:
            problems.append(f"study {signature.study.slug}: {problem}")
    return checked, problems


def _final_truth_problem(study: Study, event: AuditEvent) -> str | None:
    after: dict[str, Any] = event.after if isinstance(event.after, dict) else {}
    if truth_digest(study) == after.get("data_sha256"):
        return None
    return next(_truth_differences(study, event), None) or (
        f"its truth no longer matches the final-truth signature (audit event {event.sequence})"
    )


def _truth_differences(study: Study, event: AuditEvent) -> Iterator[str]:
    after: dict[str, Any] = event.after if isinstance(event.after, dict) else {}
    signed = {(c, f): (present, source) for c, f, present, source in after.get("truth", [])}
    stored = {(c, f): (present, source) for c, f, present, source in truth_rows(study)}
    for case_id, code in sorted(signed.keys() | stored.keys()):
        was, now = signed.get((case_id, code)), stored.get((case_id, code))
        where = f"truth of case {case_id}, {code}"
        if now is None:
            yield f"{where} was removed after the final-truth audit event {event.sequence}"
        elif was is None:
            yield f"{where} was added after the final-truth audit event {event.sequence}"
        elif now != was:
            field = "present" if now[0] != was[0] else "source"
            value = 0 if field == "present" else 1
            yield (
                f"{where} differs from the final-truth audit event {event.sequence}: "
                f"{field} {now[value]} != {was[value]}"
            )


def _locked_study_problem(study: Study, signature: Signature) -> str | None:
    event = signature.audit_event
    after: dict[str, Any] = event.after if isinstance(event.after, dict) else {}
    differences = _read_differences(study, signature)
    first = next(differences, None)
    if first is None:
        final = (
            Signature.objects.filter(study=study, kind=Signature.Kind.TRUTH_FINALIZE)
            .select_related("audit_event")
            .first()
        )
        if final is not None:
            first = next(_truth_differences(study, final.audit_event), None)
    if first is None and _has_allocation(study):
        try:
            verify_allocation(study)
        except AllocationError as error:
            first = f"allocation: {error}"
    if first is not None:
        return first
    if study_data_digest(study) != after.get("data_sha256"):
        return (
            f"its data no longer match the study-lock signature (audit event {event.sequence}), "
            "and no single read, truth or assignment differs from its record: the protocol "
            "version or an assignment's reader, case or arm was changed"
        )
    return None


def _has_allocation(study: Study) -> bool:
    return (
        AllocationRecord.objects.filter(study=study).exists()
        or Assignment.objects.filter(session__study=study).exists()
    )


def _read_differences(study: Study, signature: Signature) -> Iterator[str]:
    """Reads compared with the READ_SUBMIT / READ_CORRECT event that recorded each of them."""
    recorded: dict[int, AuditEvent] = {}
    for logged_event in AuditEvent.objects.filter(
        study=study, action__in=(Action.READ_SUBMIT, Action.READ_CORRECT)
    ).order_by("sequence"):
        if logged_event.object_id.isdigit():
            recorded.setdefault(int(logged_event.object_id), logged_event)
    findings: dict[int, list[tuple[str, bool, int]]] = {}
    for read_id, code, present, confidence in (
        ReadFinding.objects.filter(read__assignment__session__study=study)
        .order_by("read_id", "finding_type__code")
        .values_list("read_id", "finding_type__code", "present", "confidence")
    ):
        findings.setdefault(read_id, []).append((code, present, confidence))
    reads = (
        Read.objects.filter(assignment__session__study=study)
        .order_by("pk")
        .values_list("pk", "assignment__reader__code", "assignment__case__case_id", "submitted_at")
    )
    seen = set()
    for pk, reader, case_id, submitted_at in reads:
        seen.add(pk)
        name = f"read {pk} (reader {reader}, case {case_id}"
        if submitted_at > signature.signed_at:
            yield (
                f"{name}) was submitted at {submitted_at:%Y-%m-%d %H:%M:%S} UTC, after the "
                f"study-lock signature of {signature.signed_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        event = recorded.get(pk)
        if event is None:
            yield f"{name}) has no audit event (read.submit or read.correct)"
            continue
        after: dict[str, Any] = event.after if isinstance(event.after, dict) else {}
        if "submitted_at" in after and to_json(submitted_at) != after["submitted_at"]:
            yield (
                f"{name}) differs from its audit event {event.sequence}: submitted_at "
                f"{to_json(submitted_at)} != {after['submitted_at']}"
            )
        logged: dict[str, Any] = after.get("findings") or {}
        for code, present, confidence in findings.get(pk, []):
            entry = logged.get(code)
            if not isinstance(entry, dict):
                yield f"{name}, {code}) is not in its audit event {event.sequence}"
                continue
            for field, value in (("present", present), ("confidence", confidence)):
                if entry.get(field) != value:
                    yield (
                        f"{name}, {code}) differs from its audit event {event.sequence}: "
                        f"{field} {value} != {entry.get(field)}"
                    )
        missing = sorted(set(logged) - {code for code, _, _ in findings.get(pk, [])})
        if missing:
            yield f"{name}) lost its finding(s) {', '.join(missing)} (audit event {event.sequence})"
    for pk in sorted(set(recorded) - seen):
        yield f"read {pk} was recorded by audit event {recorded[pk].sequence} but is not stored"
