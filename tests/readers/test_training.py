"""Reader training end to end through HTTP: the gate, the feedback, the waiver, the blinding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN, ensure_roles
from studyplatform.audit.models import Action, AuditEvent
from studyplatform.reading.models import Assignment, Enrolment, Read, Reader, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Study, StudyMembership
from tests.amendments import amend_url, amendment_form
from tests.factories import UserFactory
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

TRAINING = ["C004", "C005"]
AI_MARKERS = ("ai-panel", "ai-data", "heatmap", "0.87")


@dataclass
class Trial:
    study: Study
    coordinator: User
    statistician: User
    reader: User
    other_reader: User


def _staff(username: str, role: str, study: Study, member_role: str) -> User:
    user = cast(User, UserFactory(username=username, is_staff=True))
    user.groups.set([Group.objects.get(name=role)])
    StudyMembership.objects.create(study=study, user=user, role=member_role)
    return user


@pytest.fixture
def trial(client: Client) -> Trial:
    """A crossover study whose coordinator marked two training cases on the page, then opened."""
    ensure_roles()
    study = make_study(n_cases=6, n_readers=2, with_images=True, with_prereads=True)
    coordinator = _staff("coord", COORDINATOR, study, MemberRole.COORDINATOR)
    client.force_login(coordinator)
    response = client.post(
        reverse("dashboard:manage_training_cases", args=[study.slug]), {"training": TRAINING}
    )
    assert response.status_code == 302
    client.logout()
    randomize_study(study=study)
    study = open_study(study=study)
    readers = Reader.objects.filter(enrolments__study=study).order_by("code")
    return Trial(
        study=study,
        coordinator=coordinator,
        statistician=_staff("stat", STATISTICIAN, study, MemberRole.STATISTICIAN),
        reader=readers[0].user,
        other_reader=readers[1].user,
    )


def _answers(present: bool) -> dict:
    return {
        "nodule": {"present": present, "confidence": 80 if present else 20, "marks": []},
        "effusion": {"present": False, "confidence": 10, "marks": []},
    }


def _submit(client: Client, assignment: Assignment, present: bool = True):
    body = {"idempotency_key": f"key-{assignment.pk:08d}", "findings": _answers(present)}
    return client.post(
        reverse("readers-submit", args=[assignment.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def _analysed(trial: Trial) -> Assignment:
    return Assignment.objects.filter(
        session__study=trial.study, session__training=False, reader__user=trial.reader
    ).order_by("session__number", "position", "step")[0]


def test_training_cases_are_never_randomized(trial):
    allocated = set(
        Assignment.objects.filter(session__study=trial.study).values_list(
            "case__case_id", flat=True
        )
    )
    assert allocated == {"C000", "C001", "C002", "C003"}
    assert AuditEvent.objects.filter(action=Action.TRAINING_CASES, study=trial.study).exists()


def test_reader_is_blocked_before_training_with_a_clear_message(client, trial):
    client.force_login(trial.reader)
    home = client.get("/").content.decode()
    assert "Start training" in home
    assert "Locked: your analysed sessions open after your training (0 of 2" in home
    assignment = _analysed(trial)
    page = client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert page.status_code == 403
    assert "open after your training" in page.content.decode()
    assert Assignment.objects.get(pk=assignment.pk).opened_at is None
    # The write path refuses too, even for an assignment opened some other way.
    Assignment.objects.filter(pk=assignment.pk).update(opened_at=timezone.now())
    refused = _submit(client, assignment)
    assert refused.status_code == 409
    assert "open after your training" in refused.json()["error"]
    assert not Read.objects.filter(assignment=assignment).exists()


def test_training_read_shows_truth_after_submit_and_the_ai_only_then(client, trial):
    client.force_login(trial.reader)
    started = client.post(reverse("readers-training", args=[trial.study.slug]))
    session = ReadingSession.objects.get(
        study=trial.study, reader__user=trial.reader, training=True
    )
    assert started.status_code == 302
    assert started["Location"] == reverse("readers-continue", args=[session.pk])
    ordered = list(session.assignments.order_by("position", "step").select_related("arm", "case"))
    assert [(a.case.case_id, a.arm.name) for a in ordered] == [
        ("C004", "unassisted"),
        ("C004", "assisted"),
        ("C005", "unassisted"),
        ("C005", "assisted"),
    ]
    first = ordered[0]
    page = client.get(reverse("readers-assignment", args=[first.pk])).content.decode()
    assert "training" in page
    for marker in AI_MARKERS:
        assert marker not in page  # blinding holds in an unassisted training read
    assert client.get(reverse("readers-heatmap", args=[first.pk])).status_code == 404
    submitted = _submit(client, first, present=False)
    assert submitted.status_code == 201
    feedback_url = reverse("readers-assignment", args=[first.pk])
    assert submitted.json()["next"] == feedback_url
    feedback = client.get(feedback_url).content.decode()
    assert 'id="training-feedback"' in feedback and 'id="training-ai"' in feedback
    assert '<td class="truth">absent</td>' in feedback  # C004 has neither finding
    assert "0.87" in feedback  # the AI's answer, after submission only
    assert "Next training case" in feedback
    # After the reads of every training case, the analysed sessions open.
    for assignment in ordered[1:]:
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        assert _submit(client, assignment).status_code == 201
    session.refresh_from_db()
    assert session.completed_at is not None
    assert client.get(reverse("readers-assignment", args=[_analysed(trial).pk])).status_code == 200
    home = client.get("/").content.decode()
    assert "open after your training" not in home and "Done" in home


def test_the_study_may_keep_the_ai_out_of_training_feedback(client, trial):
    Study.objects.filter(pk=trial.study.pk).update(training_shows_ai=False)
    client.force_login(trial.reader)
    client.post(reverse("readers-training", args=[trial.study.slug]))
    first = Assignment.objects.filter(session__training=True, reader__user=trial.reader).order_by(
        "position", "step"
    )[0]
    client.get(reverse("readers-assignment", args=[first.pk]))
    _submit(client, first)
    feedback = client.get(reverse("readers-assignment", args=[first.pk])).content.decode()
    assert 'id="training-feedback"' in feedback
    for marker in AI_MARKERS:
        assert marker not in feedback


def test_training_feedback_follows_the_protocol_version_in_force(client, trial):
    client.force_login(trial.reader)
    client.post(reverse("readers-training", args=[trial.study.slug]))
    first, second = Assignment.objects.filter(
        session__training=True, reader__user=trial.reader
    ).order_by("position", "step")[:2]
    client.get(reverse("readers-assignment", args=[first.pk]))
    assert _submit(client, first).status_code == 201
    feedback_url = reverse("readers-assignment", args=[first.pk])
    assert 'id="training-ai"' in client.get(feedback_url).content.decode()

    # The coordinator amends the protocol (version 2): no AI in training feedback.
    client.force_login(trial.coordinator)
    data = amendment_form(
        trial.study, training_shows_ai=None, reason="Train on the images alone first."
    )
    assert client.post(amend_url(trial.study), data).status_code == 302
    client.force_login(trial.reader)
    feedback = client.get(feedback_url).content.decode()
    assert 'id="training-feedback"' in feedback
    for marker in AI_MARKERS:
        assert marker not in feedback
    client.get(reverse("readers-assignment", args=[second.pk]))
    assert _submit(client, second).status_code == 201
    second_feedback = client.get(reverse("readers-assignment", args=[second.pk])).content.decode()
    assert 'id="training-feedback"' in second_feedback and "0.87" not in second_feedback

    # Version 3 shows it again, on the feedback already given too.
    study = Study.objects.get(pk=trial.study.pk)
    client.force_login(trial.coordinator)
    data = amendment_form(study, training_shows_ai="on", reason="Show the AI again.")
    assert client.post(amend_url(study), data).status_code == 302
    assert Study.objects.get(pk=study.pk).protocol_version == 3
    client.force_login(trial.reader)
    assert "0.87" in client.get(feedback_url).content.decode()


def test_only_the_studys_coordinators_waive_training_with_a_reason_audited(client, trial):
    enrolment = Enrolment.objects.get(study=trial.study, reader__user=trial.reader)
    url = reverse("dashboard:manage_training_waive", args=[trial.study.slug, enrolment.pk])
    for user in (trial.reader, trial.statistician):
        client.force_login(user)
        assert client.post(url, {"reason": "experienced"}).status_code == 403
    client.force_login(trial.coordinator)
    assert client.post(url, {"reason": "  "}).status_code == 400
    page = client.get(reverse("dashboard:manage_training", args=[trial.study.slug]))
    assert page.status_code == 200 and 'data-state="pending"' in page.content.decode()
    assert client.post(url, {"reason": "trained on the same viewer in 2025"}).status_code == 302
    enrolment.refresh_from_db()
    assert enrolment.training_waived_by == trial.coordinator
    event = AuditEvent.objects.get(action=Action.TRAINING_WAIVE, study=trial.study)
    assert event.reason == "trained on the same viewer in 2025"
    assert event.actor_id == trial.coordinator.pk
    assert client.post(url, {"reason": "again"}).status_code == 409  # waived already
    client.force_login(trial.reader)
    assert client.get(reverse("readers-assignment", args=[_analysed(trial).pk])).status_code == 200
    # The other reader's training still holds their sessions closed.
    client.force_login(trial.other_reader)
    other = Assignment.objects.filter(
        session__study=trial.study, session__training=False, reader__user=trial.other_reader
    ).order_by("session__number", "position", "step")[0]
    assert client.get(reverse("readers-assignment", args=[other.pk])).status_code == 403


def test_training_cases_are_fixed_once_the_study_opened(client, trial):
    client.force_login(trial.coordinator)
    response = client.post(
        reverse("dashboard:manage_training_cases", args=[trial.study.slug]),
        {"training": ["C000"]},
    )
    assert response.status_code == 409
    assert "training cases are chosen while it is a draft" in response.content.decode()
    assert (
        list(
            trial.study.cases.filter(training=True)
            .order_by("case_id")
            .values_list("case_id", flat=True)
        )
        == TRAINING
    )
