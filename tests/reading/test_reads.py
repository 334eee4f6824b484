"""submit_read and open_assignment beyond what the views show: races, order, washout."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyplatform.reading.demo import simulate_demo_reads
from studyplatform.reading.models import (
    Assignment,
    Read,
    ReadFinding,
    ReadingSession,
    ReadTelemetry,
)
from studyplatform.reading.rating import contradicts
from studyplatform.reading.selectors import assignment_for_reader, case_images, finding_types_of
from studyplatform.reading.services import (
    NotAvailableError,
    OutOfOrderError,
    open_assignment,
    open_study,
    randomize_study,
    submit_read,
)
from studyplatform.studies.models import Study, StudyState
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> ReadingSession:
    study = make_study(n_cases=4, n_readers=1, with_images=True)
    randomize_study(study=study)
    open_study(study=study)
    return ReadingSession.objects.get(study=study, number=1)


def _loaded(assignment):
    return assignment_for_reader(user=assignment.reader.user, assignment_id=assignment.pk)


def _submit(assignment, key):
    study_id = assignment.session.study_id
    return submit_read(
        assignment=assignment,
        user=assignment.reader.user,
        idempotency_key=key,
        findings={
            "nodule": {"present": True, "confidence": 60},
            "effusion": {"present": False, "confidence": 20},
        },
        free_text="",
        finding_types=list(finding_types_of(study_id)),
        image_sizes={im.position: (im.rows, im.columns) for im in case_images(assignment.case_id)},
    )


def test_racing_submits_store_one_read(session):
    first = session.assignments.order_by("position")[0]
    open_assignment(assignment=_loaded(first))
    # Both requests loaded the assignment before either stored its read.
    one, two = _loaded(first), _loaded(first)
    read, created = _submit(one, "key-first-tab-01")
    again, created_again = _submit(two, "key-second-tab-2")
    assert created and not created_again and again.pk == read.pk
    assert Read.objects.filter(assignment=first).count() == 1


def test_cases_open_in_order_only(session):
    first, second = session.assignments.order_by("position")[:2]
    with pytest.raises(OutOfOrderError):
        open_assignment(assignment=_loaded(second))
    opened = open_assignment(assignment=_loaded(first))
    _submit(_loaded(first), "key-in-order-001")
    second_opened = open_assignment(assignment=_loaded(second)).opened_at
    assert second_opened is not None and opened.opened_at is not None
    assert second_opened >= opened.opened_at


def test_a_session_opens_only_after_the_previous_one_and_its_washout(session):
    later = ReadingSession.objects.get(study=session.study, reader=session.reader, number=2)
    assignment = later.assignments.order_by("position")[0]
    # The scheduled date alone does not open it: session 1 is not finished.
    ReadingSession.objects.filter(pk=later.pk).update(
        available_from=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(NotAvailableError, match="after you finish session 1"):
        open_assignment(assignment=_loaded(assignment))
    for number, first in enumerate(session.assignments.order_by("position", "step")):
        open_assignment(assignment=_loaded(first))
        _submit(_loaded(first), f"key-washout-{number:04d}")
    with pytest.raises(NotAvailableError, match=r"locked until .* \(washout\)"):
        open_assignment(assignment=_loaded(assignment))
    completed = ReadingSession.objects.get(pk=session.pk).completed_at
    assert completed is not None
    # The washout has passed since the reader finished session 1 (and its scheduled date too).
    ReadingSession.objects.filter(pk=session.pk).update(
        completed_at=completed - timedelta(days=session.study.washout_days, seconds=1)
    )
    ReadingSession.objects.filter(pk=later.pk).update(
        available_from=timezone.now() - timedelta(seconds=1)
    )
    assert open_assignment(assignment=_loaded(assignment)).opened_at is not None


def test_simulated_demo_reads_never_contradict_their_ratings(session):
    reader = session.reader.code
    assert simulate_demo_reads(study=session.study, seed=7, readers=[reader]) == 8
    answers = ReadFinding.objects.filter(read__assignment__session__study=session.study)
    assert answers.count() == 16
    assert not [
        (a.present, a.confidence)
        for a in answers
        if contradicts(present=a.present, confidence=a.confidence)
    ]


def test_simulated_demo_reads_have_telemetry_within_their_times(session):
    simulate_demo_reads(study=session.study, seed=7, readers=[session.reader.code])
    records = ReadTelemetry.objects.filter(read__assignment__session__study=session.study)
    assert records.count() == 8
    for t in records.select_related("read__assignment__arm"):
        assert 0 < t.series_time_s <= t.read.duration_s
        assert t.slices_viewed <= t.slices_total
        if not t.read.assignment.arm.shows_ai:
            assert (t.ai_overlay_on, t.ai_overlay_s, t.ai_first_view_s) == (False, 0, None)
        assert t.ai_overlay_s <= t.series_time_s


@pytest.mark.django_db(transaction=True)
def test_a_submit_waiting_on_a_lock_being_signed_is_refused_after_it(roles):
    """The study is locked in a transaction that commits while the submit is in flight: the
    submit waits for it on the study's row and is refused, although the request loaded the
    study while it was still open."""
    study = make_study(n_cases=2, n_readers=1, with_images=True)
    randomize_study(study=study)
    open_study(study=study)
    first = Assignment.objects.filter(session__number=1).order_by("position", "step").first()
    client = Client()
    client.force_login(first.reader.user)
    assert client.get(reverse("readers-assignment", args=[first.pk])).status_code == 200
    held, submitting = threading.Event(), threading.Event()

    def sign_lock() -> None:
        try:
            with transaction.atomic():
                locked = Study.objects.select_for_update().get(pk=study.pk)
                locked.state = StudyState.LOCKED
                locked.locked_at = timezone.now()
                locked.save(update_fields=["state", "locked_at"])
                held.set()
                submitting.wait(10)
                # Let the submit reach the study's row lock before this commits.
                threading.Event().wait(0.5)
        finally:
            connection.close()

    signer = threading.Thread(target=sign_lock)
    signer.start()
    assert held.wait(10)
    submitting.set()
    body = {
        "idempotency_key": "key-in-flight-01",
        "findings": {
            "nodule": {"present": True, "confidence": 60},
            "effusion": {"present": False, "confidence": 20},
        },
    }
    response = client.post(
        reverse("readers-submit", args=[first.pk]),
        json.dumps(body),
        content_type="application/json",
    )
    signer.join(10)
    assert response.status_code == 409 and "locked" in response.json()["error"]
    assert not Read.objects.exists()
