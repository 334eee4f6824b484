"""The arrival API: authenticated, idempotent case arrival from hospital systems."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from studyplatform.studies import api
from studyplatform.studies.models import Case, Design, MemberRole, StudyMembership, StudyState
from studyplatform.studies.services import issue_site_token
from tests.factories import FindingTypeFactory, SiteFactory, StudyFactory, UserFactory
from tests.studies.import_fixtures import leaked_tokens, pydicom_file, with_phi

pytestmark = pytest.mark.django_db

URL = "/api/studies/{}/cases/"


@pytest.fixture
def study():
    study = StudyFactory(slug="pros", design=Design.PROSPECTIVE)
    FindingTypeFactory(study=study, code="nodule")
    return study


@pytest.fixture
def north():
    return SiteFactory(code="north")


@pytest.fixture
def token(study, north):
    return issue_site_token(study=study, site=north, name="PACS router")


def _dicom(name="MR_small.dcm", content=None):
    data = content if content is not None else pydicom_file(name).read_bytes()
    return SimpleUploadedFile(name, data, content_type="application/dicom")


def _post(client, study, *, token=None, metadata=None, images=None, **extra):
    data: dict[str, object] = {
        "metadata": json.dumps(metadata if metadata is not None else {"case_id": "P-001"})
    }
    data["images"] = images if images is not None else [_dicom()]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(URL.format(study.slug), data, **headers, **extra)


@pytest.fixture
def followups(monkeypatch):
    """The follow-up services, recorded (the real ones are tested in their own apps)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "studyplatform.studies.services.cases._request_preread",
        lambda case: calls.append(("preread", case.case_id)),
    )
    monkeypatch.setattr(
        "studyplatform.studies.services.cases._allocate",
        lambda case: calls.append(("allocate", case.case_id)),
    )
    return calls


def test_a_site_token_stores_the_case_and_queues_its_follow_ups_after_commit(
    client, study, token, followups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(
            client, study, token=token, images=[_dicom(content=with_phi("MR_small.dcm"))]
        )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["case_id"], body["site"], body["modality"]) == ("P-001", "north", "MR")
    assert body["images"][0]["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert followups == [("preread", "P-001"), ("allocate", "P-001")]
    image = Case.objects.get(case_id="P-001").images.get()
    assert leaked_tokens(Path(image.original.path).read_bytes()) == []


def test_resending_the_same_case_returns_the_stored_one(client, study, token, followups):
    first = _post(client, study, token=token)
    again = _post(client, study, token=token)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Case.objects.count() == 1


def test_the_same_case_id_with_other_images_is_a_conflict(client, study, token, followups):
    _post(client, study, token=token)
    response = _post(client, study, token=token, images=[_dicom("CT_small.dcm")])

    assert response.status_code == 409
    assert "other images" in response.json()["error"]
    assert Case.objects.get().modality == "MR"


def _other_series(name: str, number: int) -> bytes:
    """The file as a series of its own: two encodings of one slice in one series are refused."""
    ds = pydicom.dcmread(pydicom_file(name))
    ds.SeriesInstanceUID = f"{ds.SeriesInstanceUID}.{number}"
    ds.SeriesNumber = number
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_compressed_real_files_arrive(client, study, token, followups):
    second = _other_series("MR_small_jp2klossless.dcm", 9)
    images = [_dicom("MR_small_RLE.dcm"), _dicom("MR_small_jp2klossless.dcm", second)]
    response = _post(client, study, token=token, images=images)

    assert response.status_code == 201, response.content
    syntaxes = [image["transfer_syntax"] for image in response.json()["images"]]
    assert syntaxes == ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"]


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer not-a-token", 401), ("Basic dXNlcjpwdw==", 401)],
)
def test_missing_or_wrong_tokens_are_refused(client, study, token, header, status):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = _post(client, study, **extra)

    assert response.status_code == status
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Case.objects.exists()


def test_a_token_of_another_study_or_site_is_forbidden(client, study, token, north):
    other = StudyFactory(slug="other", design=Design.PROSPECTIVE)
    SiteFactory(code="south")

    assert _post(client, other, token=token).status_code == 403
    meta = {"case_id": "P-002", "site": "south"}
    assert _post(client, study, token=token, metadata=meta).status_code == 403
    assert not Case.objects.exists()


def test_a_revoked_token_is_refused(client, study, token, north):
    north.tokens.update(revoked_at=timezone.now())
    assert _post(client, study, token=token).status_code == 401


def test_a_coordinators_session_may_send_cases_but_others_may_not(study, north, followups):
    coordinator, reader = UserFactory(username="coord"), UserFactory(username="reader")
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    meta = {"case_id": "S-1", "site": "north"}

    client = Client()
    client.force_login(reader)
    assert _post(client, study, metadata=meta).status_code == 403

    client.force_login(coordinator)
    assert _post(client, study, metadata=meta).status_code == 201
    from studyplatform.audit.models import AuditEvent

    assert AuditEvent.objects.get(action="case.import").actor_id == coordinator.pk

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(coordinator)
    response = _post(strict, study, metadata=meta | {"case_id": "S-2"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


@pytest.mark.parametrize(
    ("metadata", "images", "field"),
    [
        ({}, None, "case_id"),
        ({"case_id": "bad id!"}, None, "case_id"),
        ({"case_id": "P-1", "colour": "red"}, None, "colour"),
        ({"case_id": "P-1", "truth": {"nodule": 2}}, None, "truth"),
        ({"case_id": "P-1"}, [], "images"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(client, study, token, metadata, images, field):
    response = _post(client, study, token=token, metadata=metadata, images=images)

    assert response.status_code == 400
    body = response.json()
    assert body.get("field") == field or field in body["error"]
    assert not Case.objects.exists()


def test_bad_files_are_refused_naming_the_file(client, study, token):
    text = SimpleUploadedFile("notes.txt", b"hello", content_type="text/plain")
    bogus = SimpleUploadedFile(
        "scan.dcm", b"not dicom at all" * 20, content_type="application/dicom"
    )

    by_type = _post(client, study, token=token, images=[text])
    by_content = _post(client, study, token=token, images=[_dicom(), bogus])

    assert by_type.status_code == 400 and "notes.txt" in by_type.json()["error"]
    assert by_content.status_code == 400
    assert by_content.json()["problems"] == [
        {"where": "scan.dcm", "reason": "not a DICOM, PNG or JPEG file"}
    ]
    assert not Case.objects.exists()


def test_size_limits_are_enforced(client, study, token, monkeypatch):
    monkeypatch.setattr(api, "MAX_REQUEST_BYTES", 1000)
    assert _post(client, study, token=token).status_code == 413

    monkeypatch.setattr(api, "MAX_REQUEST_BYTES", 10**9)
    monkeypatch.setattr(api, "MAX_FILES", 1)
    assert (
        _post(client, study, token=token, images=[_dicom(), _dicom("CT_small.dcm")]).status_code
        == 400
    )


def test_uploads_never_touch_a_temporary_file(client, study, token, followups, settings, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # Django would spool anything larger to disk
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)

    response = _post(client, study, token=token, images=[_dicom(content=with_phi("CT_small.dcm"))])

    assert response.status_code == 201
    assert list(spool.iterdir()) == []


def test_a_locked_study_refuses_arrivals(client, study, token):
    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()

    response = _post(client, study, token=token)

    assert response.status_code == 409
    assert "study pros is locked" in response.json()["error"]
    assert response.json()["problems"][0]["where"] == "pros"
    assert not Case.objects.exists()


def test_a_case_with_truth_is_refused_once_the_truth_is_signed_final(
    client, study, token, roles, followups
):
    from tests.signing import sign_final_truth

    first = _post(client, study, token=token, metadata={"case_id": "P-001", "truth": {"nodule": 1}})
    assert first.status_code == 201
    study.state, study.opened_at = StudyState.OPEN, timezone.now()
    study.save()
    sign_final_truth(study)

    response = _post(
        client,
        study,
        token=token,
        metadata={"case_id": "P-002", "truth": {"nodule": 0}},
        images=[_dicom("CT_small.dcm")],
    )

    assert response.status_code == 409
    assert "finalized by electronic signature" in response.json()["error"]
    assert list(Case.objects.values_list("case_id", flat=True)) == ["P-001"]


def test_a_locked_study_gets_no_new_site_token(study, north):
    from django.core.management import CommandError, call_command

    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()

    with pytest.raises(CommandError, match=r"is locked .*no token was issued"):
        call_command("issue_site_token", study.slug, north.code)
    assert not study.site_tokens.exists()


def test_only_post_is_allowed(client, study, token):
    response = client.get(URL.format(study.slug), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


def test_an_arriving_case_of_an_open_prospective_study_is_randomized(
    client, django_capture_on_commit_callbacks
):
    from studyplatform.reading.models import Assignment
    from studyplatform.reading.services import open_study, randomize_study
    from tests.reading.helpers import make_study

    study = make_study(n_cases=2, n_readers=2, design="prospective", slug="arrive")
    randomize_study(study=study)
    open_study(study=study)
    token = issue_site_token(study=study, site=study.cases.first().site, name="router")

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, study, token=token, metadata={"case_id": "NEW-1"})

    assert response.status_code == 201, response.content
    assigned = Assignment.objects.filter(case__case_id="NEW-1")
    assert assigned.count() == study.readers_per_case
    assert assigned.first().arm.name in {"unassisted", "assisted"}


def test_issue_site_token_prints_a_token_that_the_api_accepts(client, study, north, followups):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("issue_site_token", study.slug, "north", "--name", "router", stdout=out)
    token = out.getvalue().strip()

    assert _post(client, study, token=token).status_code == 201
    assert token not in str(list(north.tokens.values()))  # only its hash is stored


def test_metadata_may_come_as_plain_form_fields(client, study, token, followups):
    data = {"case_id": "F-1", "site": "north", "modality": "mr", "images": [_dicom()]}
    response = client.post(URL.format(study.slug), data, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 201, response.content
    assert (response.json()["case_id"], response.json()["modality"]) == ("F-1", "MR")


def test_an_arriving_case_gets_a_pending_preread_queued_with_the_pinned_model(
    client, study, token, monkeypatch, django_capture_on_commit_callbacks
):
    from studyplatform.prereads.models import PreRead
    from studyplatform.prereads.services import pin_model
    from tests.factories import AIModelFactory

    model = AIModelFactory()
    pin_model(study=study, model=model)
    AIModelFactory()  # registered later, not pinned: it pre-reads nothing of this study
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(
        "studyplatform.prereads.services.enqueue", lambda task, **kwargs: sent.append(kwargs)
    )
    monkeypatch.setattr("studyplatform.studies.services.cases._allocate", lambda case: None)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, study, token=token)

    assert response.status_code == 201, response.content
    preread = PreRead.objects.get(case__case_id="P-001")
    assert (preread.model, preread.status) == (model, "pending")
    assert [kwargs["preread_ids"] for kwargs in sent] == [[preread.pk]]
