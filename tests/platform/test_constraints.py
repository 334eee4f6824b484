"""The database itself refuses rows that break the trial's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.factories import (
    AIModelFactory,
    ArmFactory,
    AssignmentFactory,
    CaseFactory,
    PreReadFactory,
    ReaderFactory,
    ReadFactory,
    ReadFindingFactory,
    ReadingSessionFactory,
    StudyFactory,
    TruthFactory,
)

pytestmark = pytest.mark.django_db


def _refused(factory, **kwargs):
    with pytest.raises(IntegrityError), transaction.atomic():
        factory(**kwargs)


def test_confidence_above_100_is_refused():
    _refused(ReadFindingFactory, confidence=101)


def test_confidence_bounds_are_accepted():
    ReadFindingFactory(confidence=0)
    ReadFindingFactory(confidence=100)


def test_second_assignment_for_same_reader_case_arm_session_is_refused():
    first = AssignmentFactory(position=1)
    _refused(
        AssignmentFactory,
        session=first.session,
        case=first.case,
        arm=first.arm,
        position=2,
    )


def test_same_case_in_other_arm_of_same_session_is_allowed():
    first = AssignmentFactory(position=1)
    other_arm = ArmFactory(study=first.session.study, name="assisted")
    AssignmentFactory(session=first.session, case=first.case, arm=other_arm, position=2)


def test_two_assignments_at_one_position_are_refused():
    first = AssignmentFactory(position=3)
    _refused(AssignmentFactory, session=first.session, position=3)


def test_second_preread_for_same_case_and_model_is_refused():
    preread = PreReadFactory()
    _refused(PreReadFactory, case=preread.case, model=preread.model)


def test_same_case_by_two_models_is_allowed():
    preread = PreReadFactory()
    PreReadFactory(case=preread.case, model=AIModelFactory())


def test_failed_preread_without_error_is_refused():
    _refused(PreReadFactory, status="failed", error="")


def test_second_submitted_read_per_assignment_is_refused():
    read = ReadFactory()
    _refused(ReadFactory, assignment=read.assignment)


def test_correction_is_a_new_read_that_supersedes_the_first():
    read = ReadFactory()
    correction = ReadFactory(
        assignment=read.assignment, supersedes=read, correction_reason="wrong side"
    )
    assert read.superseded_by == correction


def test_correction_without_reason_is_refused():
    read = ReadFactory()
    _refused(ReadFactory, assignment=read.assignment, supersedes=read, correction_reason="")


def test_read_submitted_before_it_started_is_refused():
    now = timezone.now()
    _refused(ReadFactory, started_at=now, submitted_at=now - timedelta(seconds=1))


def test_duplicate_idempotency_key_is_refused():
    read = ReadFactory()
    _refused(ReadFactory, idempotency_key=read.idempotency_key)


def test_one_truth_per_case_and_finding_type():
    truth = TruthFactory()
    _refused(TruthFactory, case=truth.case, finding_type=truth.finding_type, present=False)


def test_case_ids_are_unique_within_a_study_only():
    case = CaseFactory(case_id="A1")
    _refused(CaseFactory, study=case.study, case_id="A1")
    CaseFactory(case_id="A1", study=StudyFactory())


def test_session_number_unique_per_reader_and_study():
    session = ReadingSessionFactory(number=1)
    _refused(ReadingSessionFactory, study=session.study, reader=session.reader, number=1)
    ReadingSessionFactory(study=session.study, reader=ReaderFactory(), number=1)


def test_open_study_must_record_when_it_opened():
    _refused(StudyFactory, state="open", opened_at=None)
    StudyFactory(state="open", opened_at=timezone.now())


def test_threshold_outside_unit_interval_is_refused():
    _refused(AIModelFactory, threshold=1.5)
