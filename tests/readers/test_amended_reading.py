"""A finding type added by an amendment is asked from the next case a reader opens."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from studyplatform.audit.signatures import amend_protocol
from studyplatform.reading.models import Assignment, Read, ReadingSession
from studyplatform.studies.models import Study
from tests.amendments import coordinator_of, opened_study
from tests.reading.helpers import PASSWORD

pytestmark = pytest.mark.django_db

PNEUMOTHORAX = {"code": "pneumothorax", "name": "Pneumothorax", "clinically_significant": True}


def _findings(*codes: str) -> dict:
    return {code: {"present": False, "confidence": 10, "marks": []} for code in codes}


def _submit(client, assignment: Assignment, findings: dict):
    body = {"idempotency_key": f"key-{assignment.pk:010d}", "findings": findings, "free_text": ""}
    return client.post(
        reverse("readers-submit", args=[assignment.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def _asked(client, assignment: Assignment) -> list[str]:
    page = client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert page.status_code == 200
    return [f["code"] for f in page.context["data"]["findings"]]


@pytest.fixture
def study(roles) -> Study:
    return opened_study(n_cases=4, n_readers=1, with_images=True)


def test_the_open_case_submits_without_the_new_type_and_the_next_case_asks_it(client, study):
    session = ReadingSession.objects.get(study=study, number=1)
    first, second, third = session.assignments.order_by("position", "step")[:3]
    client.force_login(session.reader.user)
    # The reader is part-way: one case submitted, the next opened with a draft saved.
    assert _asked(client, first) == ["nodule", "effusion"]
    assert _submit(client, first, _findings("nodule", "effusion")).status_code == 201
    assert _asked(client, second) == ["nodule", "effusion"]
    draft = client.post(
        reverse("readers-draft", args=[second.pk]),
        json.dumps({"findings": _findings("nodule")}),
        content_type="application/json",
    )
    assert draft.status_code == 200
    amend_protocol(
        study=study,
        user=coordinator_of(study),
        password=PASSWORD,
        reason="pneumothorax added after the safety review",
        changes={"add_finding_types": [PNEUMOTHORAX]},
    )
    # The case opened before the amendment keeps its questions, and submits without the new one.
    assert _asked(client, second) == ["nodule", "effusion"]
    refused = _submit(client, second, _findings("nodule", "effusion", "pneumothorax"))
    assert (
        refused.status_code == 400
        and "unknown finding types: pneumothorax" in refused.json()["error"]
    )
    assert _submit(client, second, _findings("nodule", "effusion")).status_code == 201
    # The next case asks it, and requires it.
    assert _asked(client, third) == ["nodule", "effusion", "pneumothorax"]
    missing = _submit(client, third, _findings("nodule", "effusion"))
    assert missing.status_code == 400 and "Pneumothorax" in missing.json()["error"]
    answered = _submit(client, third, _findings("nodule", "effusion", "pneumothorax"))
    assert answered.status_code == 201
    asked = {
        read.assignment_id: sorted(read.findings.values_list("finding_type__code", flat=True))
        for read in Read.objects.filter(assignment__session=session)
    }
    assert asked == {
        first.pk: ["effusion", "nodule"],
        second.pk: ["effusion", "nodule"],
        third.pk: ["effusion", "nodule", "pneumothorax"],
    }


def test_a_correction_asks_the_questions_the_read_was_opened_with(client, study):
    session = ReadingSession.objects.get(study=study, number=1)
    client.force_login(session.reader.user)
    # Read in order up to the first unassisted case: only a read made before the AI was seen
    # may be corrected.
    for first in session.assignments.select_related("arm").order_by("position", "step"):
        _asked(client, first)
        assert _submit(client, first, _findings("nodule", "effusion")).status_code == 201
        if not first.arm.shows_ai:
            break
    amend_protocol(
        study=study,
        user=coordinator_of(study),
        password=PASSWORD,
        reason="pneumothorax added",
        changes={"add_finding_types": [PNEUMOTHORAX]},
    )
    url = reverse("readers-correct", args=[first.pk])
    assert "pneumothorax" not in client.get(url).content.decode()
    response = client.post(
        url,
        {"reason": "typo", "nodule-present": "present", "nodule-confidence": "90",
         "effusion-present": "absent", "effusion-confidence": "5", "free_text": ""},
    )  # fmt: skip
    assert response.status_code == 302
    correction = Read.objects.get(assignment=first, supersedes__isnull=False)
    assert sorted(correction.findings.values_list("finding_type__code", flat=True)) == [
        "effusion",
        "nodule",
    ]


def test_another_readers_case_stays_forbidden_after_an_amendment(client, study):
    session = ReadingSession.objects.get(study=study, number=1)
    first = session.assignments.order_by("position", "step")[0]
    outsider = opened_study(n_cases=1, n_readers=1, slug="elsewhere").enrolments.get().reader
    client.force_login(outsider.user)
    assert client.get(reverse("readers-assignment", args=[first.pk])).status_code == 404
    assert _submit(client, first, _findings("nodule", "effusion")).status_code == 404
