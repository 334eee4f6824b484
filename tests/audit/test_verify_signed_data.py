"""verify_audit recomputes what was signed and names the first record that differs.

The tampering is done as an attacker with database access would: straight SQL, with the
append-only trigger of the read findings switched off for the statement.
"""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.reading.models import Assignment, Read, ReadFinding, ReadingSession
from studyplatform.reading.selectors import assignment_for_reader, case_images, finding_types_of
from studyplatform.reading.services import (
    correct_read,
    open_assignment,
    open_study,
    randomize_study,
    submit_read,
)
from studyplatform.studies.models import Study, Truth
from tests.reading.helpers import make_study
from tests.signing import sign_final_truth, sign_lock

pytestmark = pytest.mark.django_db


def _read(assignment: Assignment, key: str, confidence: int) -> Read:
    assignment = open_assignment(assignment=assignment)
    loaded = assignment_for_reader(user=assignment.reader.user, assignment_id=assignment.pk)
    read, _ = submit_read(
        assignment=loaded,
        user=assignment.reader.user,
        idempotency_key=key,
        findings={
            "nodule": {"present": True, "confidence": confidence},
            "effusion": {"present": False, "confidence": 10},
        },
        free_text="",
        finding_types=list(finding_types_of(assignment.session.study_id)),
        image_sizes={im.position: (im.rows, im.columns) for im in case_images(assignment.case_id)},
    )
    return read


@pytest.fixture
def signed(roles: None) -> dict[str, Any]:
    """An open study part-way read, truth final, more reads and a correction, then locked."""
    study = make_study(n_cases=6, n_readers=1, with_images=True, slug="signed")
    randomize_study(study=study)
    open_study(study=study)
    session = ReadingSession.objects.get(study=study, number=1)
    ordered = list(session.assignments.select_related("arm").order_by("position", "step"))
    # Read in order up to the first unassisted case: only a read made before the AI was seen
    # may be corrected.
    index = next(i for i, a in enumerate(ordered) if not a.arm.shows_ai)
    for earlier in ordered[:index]:
        _read(earlier, f"key-earlier-{earlier.pk:04d}", 50)
    first, second, unread = ordered[index : index + 3]
    original = _read(first, "key-first-0001", 60)
    sign_final_truth(study)  # reading goes on after the truth is final
    _read(second, "key-second-002", 70)
    correction = correct_read(
        read=original,
        user=first.reader.user,
        reason="missed the nodule's margin",
        findings={
            "nodule": {"present": True, "confidence": 95},
            "effusion": {"present": False, "confidence": 10},
        },
        free_text="",
        finding_types=list(finding_types_of(study.pk)),
        image_sizes={im.position: (im.rows, im.columns) for im in case_images(first.case_id)},
        idempotency_key="key-correction",
    )
    lock = sign_lock(study)
    return {"study": study, "correction": correction, "unread": unread, "lock": lock}


def _verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def _tamper(sql: str, params: list[Any], table: str = "") -> None:
    with connection.cursor() as cursor:
        if table:
            # The test's own transaction holds deferred foreign-key checks: run them first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        cursor.execute(sql, params)
        if table:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")


def test_verify_audit_recomputes_the_lock_and_final_truth_digests(signed):
    assert "2 signed data digest(s) recomputed and matching" in _verify()


def test_a_corrected_confidence_edited_in_the_database_is_named_with_its_event(signed):
    correction = signed["correction"]
    finding = ReadFinding.objects.get(read=correction, finding_type__code="nodule")
    event = AuditEvent.objects.get(action=Action.READ_CORRECT, object_id=str(correction.pk))

    _tamper(
        "UPDATE reading_readfinding SET confidence = 80 WHERE id = %s",
        [finding.pk],
        table="reading_readfinding",
    )

    case_id = correction.assignment.case.case_id
    reader = correction.assignment.reader.code
    expected = (
        f"study signed: read {correction.pk} (reader {reader}, case {case_id}, nodule) differs "
        f"from its audit event {event.sequence}: confidence 80 != 95"
    )
    with pytest.raises(CommandError, match=re.escape(expected)):
        _verify()


def test_final_truth_edited_in_the_database_is_named_against_the_final_truth_event(signed):
    truth = Truth.objects.select_related("case").get(
        case__study=signed["study"], case__case_id="C001", finding_type__code="nodule"
    )
    event = AuditEvent.objects.get(action=Action.TRUTH_FINALIZE, study=signed["study"])

    _tamper("UPDATE studies_truth SET present = NOT present WHERE id = %s", [truth.pk])

    expected = (
        f"study signed: truth of case C001, nodule differs from the final-truth audit event "
        f"{event.sequence}: present {not truth.present} != {truth.present}"
    )
    with pytest.raises(CommandError, match=re.escape(expected)):
        _verify()


def test_a_read_slipped_in_after_the_lock_is_named(signed):
    unread = signed["unread"]
    late = timezone.now()
    read = Read.objects.create(
        assignment=unread,
        started_at=late,
        submitted_at=late,
        idempotency_key="slipped-in-late",
        submitted_by=unread.reader.user,
    )
    ReadFinding.objects.create(read=read, finding_type=signed["study"].finding_types.first(),
                               present=True, confidence=50)  # fmt: skip

    with pytest.raises(CommandError, match=rf"read {read.pk} \(reader .*\) was submitted at .*"
                       r"after the study-lock signature"):  # fmt: skip
        _verify()


def test_an_allocation_changed_in_the_database_is_named(signed):
    study: Study = signed["study"]
    assignment = Assignment.objects.filter(session__study=study).order_by("pk").first()
    assert assignment is not None
    other = study.arms.exclude(pk=assignment.arm_id).first()
    assert other is not None

    _tamper("UPDATE reading_assignment SET arm_id = %s WHERE id = %s", [other.pk, assignment.pk])

    with pytest.raises(CommandError, match=r"allocation: .*assignments were changed"):
        _verify()
