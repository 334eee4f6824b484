"""A lone UTF-16 surrogate ("\\ud800" escaped in JSON) is refused with a 400 everywhere it can
arrive, never stored and never a 500: reading drafts and submits, corrections, the intake API."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from studyplatform.reading.models import Assignment, Read, ReadDraft, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Case, Study
from studyplatform.studies.services import issue_site_token
from tests.factories import SiteFactory, StudyFactory, UserFactory
from tests.reading.helpers import make_study
from tests.studies.import_fixtures import pydicom_file

pytestmark = pytest.mark.django_db

LONE = '"\\ud800"'  # as it appears in a JSON document: six characters of escape, no character


@pytest.fixture
def study() -> Study:
    study = make_study(n_cases=4, n_readers=2, with_images=True, with_prereads=False)
    randomize_study(study=study)
    open_study(study=study)
    return study


def _opened(client: Client, study: Study, reader: int = 1) -> Assignment:
    user = study.enrolments.get(reader__code=f"{study.slug}-R{reader}").reader.user
    client.force_login(user)
    session = ReadingSession.objects.get(
        study=study, number=1, reader__code=f"{study.slug}-R{reader}"
    )
    assignment = session.assignments.order_by("position", "step")[0]
    assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
    return assignment


def _body(free_text: str = '"ok"', key: str = '"key-0123456789"') -> str:
    findings = json.dumps(
        {
            "nodule": {"present": True, "confidence": 80, "marks": []},
            "effusion": {"present": False, "confidence": 10, "marks": []},
        }
    )
    return f'{{"idempotency_key": {key}, "findings": {findings}, "free_text": {free_text}}}'


def _post_json(client: Client, name: str, assignment: Assignment, body: str):
    return client.post(
        reverse(name, args=[assignment.pk]), body.encode("ascii"), content_type="application/json"
    )


@pytest.mark.parametrize(
    "body",
    [
        _body(free_text=LONE),
        _body(key='"key-0123456789\\udfff"'),
        _body(free_text='"fine"').replace('"nodule"', '"\\udbff"'),  # a key, not a value
        '{"free_text": ["nested", {"deeper": ' + LONE + "}]}",
    ],
)
def test_a_lone_surrogate_in_a_submit_is_refused_with_400_and_nothing_stored(client, study, body):
    assignment = _opened(client, study)

    response = _post_json(client, "readers-submit", assignment, body)

    assert response.status_code == 400
    assert "lone surrogate" in response.json()["error"]
    assert not Read.objects.filter(assignment=assignment).exists()
    # The same read without it is stored: the refusal cost the reader nothing.
    assert _post_json(client, "readers-submit", assignment, _body()).status_code == 201


def test_a_lone_surrogate_in_a_draft_is_refused_with_400_and_the_saved_draft_kept(client, study):
    assignment = _opened(client, study)
    assert _post_json(
        client, "readers-draft", assignment, _body(free_text='"kept"')
    ).status_code in (
        200,
        204,
    )

    response = _post_json(client, "readers-draft", assignment, _body(free_text=LONE))

    assert response.status_code == 400
    assert response.json()["error"] == (
        "the request body contains a lone surrogate (\\ud800), which is not a Unicode character"
    )
    assert ReadDraft.objects.get(assignment=assignment).data["free_text"] == "kept"


def test_a_lone_surrogate_is_refused_only_to_the_reader_of_the_assignment(client, study):
    assignment = _opened(client, study)
    other = Client()
    other.force_login(UserFactory())

    response = _post_json(other, "readers-submit", assignment, _body(free_text=LONE))

    assert response.status_code in (403, 404)


def test_a_surrogate_sent_in_a_correction_form_is_never_stored(client, study):
    assignment = _opened(client, study)
    # Only a read made before the AI was seen may be corrected: read up to an unassisted case.
    session = assignment.session
    for n, assignment in enumerate(session.assignments.order_by("position", "step")):
        client.get(reverse("readers-assignment", args=[assignment.pk]))
        body = _body(key=f'"key-{n:012d}"')
        assert _post_json(client, "readers-submit", assignment, body).status_code == 201
        if not assignment.arm.shows_ai:
            break
    url = reverse("readers-correct", args=[assignment.pk])
    # A form cannot carry a lone surrogate as text; its UTF-8-like bytes (%ED%A0%80) arrive.
    form = (
        "nodule-present=absent&nodule-confidence=20&effusion-present=absent&"
        "effusion-confidence=5&free_text=x%ED%A0%80y&reason=misclick%ED%A0%80"
    )

    response = client.post(url, form, content_type="application/x-www-form-urlencoded")

    assert response.status_code in (302, 400)
    for read in Read.objects.filter(assignment=assignment):
        for text in (read.free_text, read.correction_reason or ""):
            text.encode("utf-8")  # raises on a surrogate


@pytest.fixture
def intake():
    study = StudyFactory(slug="intake")
    token = issue_site_token(study=study, site=SiteFactory(code="north"), name="PACS")
    return study, token


def _arrive(study: Study, metadata: str, token: str | None):
    image = SimpleUploadedFile(
        "a.dcm", pydicom_file("MR_small.dcm").read_bytes(), content_type="application/dicom"
    )
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().post(
        f"/api/studies/{study.slug}/cases/", {"metadata": metadata, "images": [image]}, **headers
    )


@pytest.mark.parametrize(
    "metadata",
    [
        '{"case_id": ' + LONE + "}",
        '{"case_id": "P-1", "truth": {"\\udc00": 1}}',
        '{"case_id": "P-1", "modality": "M\\ud800R"}',
    ],
)
def test_a_lone_surrogate_in_intake_metadata_is_refused_with_400(intake, metadata):
    study, token = intake

    response = _arrive(study, metadata, token)

    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "metadata" and "lone surrogate" in body["error"]
    assert not Case.objects.filter(study=study).exists()


def test_intake_metadata_with_a_lone_surrogate_still_needs_a_token(intake):
    study, _ = intake

    response = _arrive(study, '{"case_id": ' + LONE + "}", token=None)

    assert response.status_code == 401
