"""STOW-RS: sites store instances with their site token; each DICOM study becomes a case."""

from __future__ import annotations

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.utils import timezone

from studyplatform.studies.models import Case, Image, SiteToken, StudyState
from studyplatform.studies.services import issue_site_token
from tests.dicomweb.builders import encode, synthetic_study
from tests.factories import SiteFactory, StudyFactory

URL = "/dicomweb/studies"
BOUNDARY = "b0undary-7d1f"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@pytest.fixture
def study(db):
    return StudyFactory(slug="chest")


@pytest.fixture
def token(study):
    return issue_site_token(study=study, site=SiteFactory(code="north"), name="PACS router")


def _body(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    chunks = []
    for part in parts:
        chunks.append(f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode())
        chunks.append(part + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def _post(client, body: bytes, *, token: str | None, url: str = URL, content_type=CONTENT_TYPE):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.generic("POST", url, body, content_type=content_type, **headers)


def _uids(answer: dict, sequence: str) -> list[tuple[str, int | None]]:
    items = answer.get(sequence, {}).get("Value", [])
    return [
        (item["00081155"]["Value"][0], item.get("00081197", {}).get("Value", [None])[0])
        for item in items
    ]


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_stores_a_study_as_one_case_and_a_repeat_changes_nothing(
    live_server, study, token
):
    synthetic = synthetic_study(images=2)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    client = DICOMwebClient(f"{live_server.url}/dicomweb", session=session)

    first = client.store_instances(synthetic.instances)
    images = set(Image.objects.values_list("pk", "sha256"))
    again = client.store_instances(synthetic.instances, study_instance_uid=synthetic.uid)

    sent = sorted(str(ds.SOPInstanceUID) for ds in synthetic.instances)
    for answer in (first, again):
        assert sorted(str(i.ReferencedSOPInstanceUID) for i in answer.ReferencedSOPSequence) == sent
        assert "FailedSOPSequence" not in answer
    case = Case.objects.get()
    assert case.case_id == synthetic.uid and case.site.code == "north"
    assert set(Image.objects.values_list("pk", "sha256")) == images and len(images) == 2
    with case.images.first().original.open("rb") as handle:
        stored = handle.read()
    assert b"Quixote" not in stored and b"MRN7731XQ" not in stored and b"20250917" not in stored
    assert str(pydicom.dcmread(io.BytesIO(stored)).StudyInstanceUID) != synthetic.uid


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_with_a_bad_token_is_refused(live_server, study, token):
    session = requests.Session()
    session.headers["Authorization"] = "Bearer not-a-token"
    client = DICOMwebClient(f"{live_server.url}/dicomweb", session=session)

    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances(synthetic_study(images=1).instances)

    assert refused.value.response.status_code == 401
    assert not Case.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "Bearer wrong"])
def test_missing_or_wrong_tokens_get_401(client, study, token, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    body = _body(*synthetic_study(images=1).encoded())
    response = client.generic("POST", URL, body, content_type=CONTENT_TYPE, **extra)
    assert response.status_code == 401 and "WWW-Authenticate" in response
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_a_revoked_token_gets_401(client, study, token):
    SiteToken.objects.update(revoked_at=timezone.now())
    response = _post(client, _body(*synthetic_study(images=1).encoded()), token=token)
    assert response.status_code == 401


@pytest.mark.django_db
def test_a_malformed_part_fails_alone_and_the_rest_is_stored(client, study, token):
    synthetic = synthetic_study(images=1)

    response = _post(client, _body(synthetic.encoded()[0], b"this is no DICOM"), token=token)

    assert response.status_code == 202
    assert response["Content-Type"] == "application/dicom+json"
    answer = response.json()
    assert _uids(answer, "00081199") == [(str(synthetic.instances[0].SOPInstanceUID), None)]
    assert answer["00081198"]["Value"] == [{"00081197": {"vr": "US", "Value": [0xC000]}}]
    assert "part 2: not a readable DICOM instance" in response["Warning"]
    assert Case.objects.get().case_id == synthetic.uid


@pytest.mark.django_db
def test_instances_without_pixels_fail_with_sop_class_not_supported(client, study, token):
    synthetic = synthetic_study(images=1, report=True)

    response = _post(client, _body(*synthetic.encoded()), token=token)

    assert response.status_code == 202
    report = synthetic.instances[1]
    assert _uids(response.json(), "00081198") == [(str(report.SOPInstanceUID), 0x0122)]
    assert Case.objects.get().images.count() == 1


@pytest.mark.django_db
def test_a_study_uid_in_the_url_must_match_every_instance(client, study, token):
    synthetic = synthetic_study(images=1)

    response = _post(client, _body(*synthetic.encoded()), token=token, url=f"{URL}/1.2.3.4")

    assert response.status_code == 409
    assert _uids(response.json(), "00081198") == [
        (str(synthetic.instances[0].SOPInstanceUID), 0xA900)
    ]
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_a_stored_study_sent_with_other_instances_is_a_conflict(client, study, token):
    synthetic = synthetic_study(images=2)
    assert _post(client, _body(synthetic.encoded()[0]), token=token).status_code == 200

    response = _post(client, _body(*synthetic.encoded()), token=token)

    assert response.status_code == 409
    assert {code for _, code in _uids(response.json(), "00081198")} == {0x0110}
    assert "send all of a study's instances in one request" in response["Warning"]
    assert Case.objects.get().images.count() == 1


@pytest.mark.django_db
def test_an_undecodable_image_fails_its_study_naming_the_instance(client, study, token):
    synthetic = synthetic_study(images=2)
    broken = synthetic.instances[1]
    broken.PixelData = broken.PixelData[:100]

    response = _post(client, _body(*synthetic.encoded()), token=token)

    assert response.status_code == 409
    failed = dict(_uids(response.json(), "00081198"))
    assert failed == {
        str(synthetic.instances[0].SOPInstanceUID): 0x0110,
        str(broken.SOPInstanceUID): 0xC000,
    }
    assert f"part 2 (instance {broken.SOPInstanceUID})" in response["Warning"]
    assert not Case.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/dicom", None, 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', None, 415),
        ('multipart/related; type="application/dicom"', None, 400),  # no boundary
        (CONTENT_TYPE, b"--b0undary-7d1f\r\nContent-Type: application/dicom\r\n\r\nDICM", 400),
        (CONTENT_TYPE, b"no boundary anywhere", 400),
    ],
)
def test_bodies_that_are_not_stow_requests_are_refused(
    client, study, token, content_type, body, status
):
    payload = body if body is not None else _body(*synthetic_study(images=1).encoded())
    response = _post(client, payload, token=token, content_type=content_type)
    assert response.status_code == status
    assert "error" in response.json()
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_only_post_is_allowed(client, study, token):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


@pytest.mark.django_db
def test_a_locked_study_stores_nothing(client, study, token):
    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()
    synthetic = synthetic_study(images=1)

    response = _post(client, _body(*synthetic.encoded()), token=token)

    assert response.status_code == 409
    assert _uids(response.json(), "00081198") == [
        (str(synthetic.instances[0].SOPInstanceUID), 0x0110)
    ]
    assert "study chest is locked" in response["Warning"]
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_past_the_intake_rate_limit_a_token_gets_429(client, study, token, settings):
    settings.INTAKE_RATE_LIMIT = 1
    body = _body(*synthetic_study(images=1).encoded())
    assert _post(client, body, token=token).status_code == 200

    response = _post(client, body, token=token)

    assert response.status_code == 429 and int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_an_instance_sent_twice_in_one_request_is_one_image(client, study, token):
    synthetic = synthetic_study(images=1)
    data = synthetic.encoded()[0]
    changed = synthetic_study(images=1, seed=5).instances[0]
    changed.SOPInstanceUID = synthetic.instances[0].SOPInstanceUID
    changed.StudyInstanceUID = synthetic.uid

    response = _post(client, _body(data, data, encode(changed)), token=token)

    assert response.status_code == 202
    uid = str(synthetic.instances[0].SOPInstanceUID)
    assert _uids(response.json(), "00081199") == [(uid, None), (uid, None)]
    assert _uids(response.json(), "00081198") == [(uid, 0x0110)]
    assert "part 3 (instance" in response["Warning"] and "sent twice" in response["Warning"]
    assert Case.objects.get().images.count() == 1


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_learns_which_instance_failed(live_server, study, token):
    good = synthetic_study(images=1, seed=1)
    bad = synthetic_study(images=1, seed=2)
    broken = bad.instances[0]
    broken.PixelData = broken.PixelData[:100]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    client = DICOMwebClient(f"{live_server.url}/dicomweb", session=session)

    answer = client.store_instances([*good.instances, broken])

    assert [str(i.ReferencedSOPInstanceUID) for i in answer.ReferencedSOPSequence] == [
        str(good.instances[0].SOPInstanceUID)
    ]
    assert [
        (str(i.ReferencedSOPInstanceUID), i.FailureReason) for i in answer.FailedSOPSequence
    ] == [(str(broken.SOPInstanceUID), 0xC000)]
    assert list(Case.objects.values_list("case_id", flat=True)) == [good.uid]
