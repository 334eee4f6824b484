"""manage.py import_dicomweb against a real Orthanc: cases, de-identification, reruns, errors."""

from __future__ import annotations

import io
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from studyplatform.prereads.models import PreReadStatus
from studyplatform.prereads.selectors import case_preread
from studyplatform.prereads.services import pin_model, run_prereads_now
from studyplatform.studies.dicomweb.archive import Archive, ArchiveError, InstanceRecord
from studyplatform.studies.dicomweb.imports import import_from_archive
from studyplatform.studies.models import Case, FindingType, Image, ImportRefusal, StudyState
from studyplatform.studies.phantoms import FINDING_NAMES, FINDING_TYPES
from tests.dicomweb.builders import encode, synthetic_study
from tests.factories import SiteFactory, StudyFactory
from tests.orthanc import Orthanc
from tests.prereads.conftest import register_random_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return StudyFactory(slug="chest")


@pytest.fixture
def site():
    return SiteFactory(code="north")


@pytest.fixture
def credentials(settings, orthanc):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = orthanc.auth
    settings.DICOMWEB_TOKEN = ""


def _upload(orthanc: Orthanc, *studies):
    for synthetic in studies:
        for data in synthetic.encoded():
            orthanc.upload(data)


def _run(capsys, orthanc, *args: str, study: str = "chest") -> tuple[str, str]:
    call_command("import_dicomweb", study, "--url", orthanc.dicomweb, "--site", "north", *args)
    captured = capsys.readouterr()
    return captured.out, captured.err


def _stored_headers(case: Case) -> list[pydicom.FileDataset]:
    headers = []
    for image in case.images.order_by("position"):
        with image.original.open("rb") as handle:
            headers.append(pydicom.dcmread(io.BytesIO(handle.read())))
    return headers


def test_each_study_becomes_a_de_identified_case(study, site, orthanc, credentials, capsys):
    first = synthetic_study(accession="ACC0001", images=2, report=True, seed=1)
    second = synthetic_study(
        patient_name="Panza^Teresa", patient_id="MRN0042", accession="ACC0002", seed=2
    )
    _upload(orthanc, first, second)

    out, _ = _run(capsys, orthanc)

    cases = {c.case_id: c for c in Case.objects.filter(study=study)}
    assert set(cases) == {"ACC0001", "ACC0002"}
    assert cases["ACC0001"].images.count() == 2 and cases["ACC0001"].modality == "CR"
    assert cases["ACC0001"].site == site and cases["ACC0001"].manufacturer == "Acme Imaging"
    assert "2 studies found, 2 case(s) created, 0 unchanged" in out
    assert "5 instance(s) retrieved, 1 skipped (no pixel data)" in out
    for synthetic in (first, second):
        case = cases[synthetic.accession]
        stored = [image.source_sha256 for image in case.images.order_by("position")]
        received = [encode(ds) for ds in synthetic.instances if "PixelData" in ds]
        assert len(stored) == len(received)
        for header in _stored_headers(case):
            assert str(header.PatientName) == case.case_id == header.PatientID
            assert header.StudyInstanceUID != synthetic.uid
            assert "19480312" not in header.to_json()
            text = header.to_json()
            for original in (synthetic.patient_name, synthetic.patient_id, synthetic.study_date):
                assert original.split("^")[0] not in text
            assert "Rocinante" not in text and "Panza^Sancho" not in text


def test_a_second_run_imports_nothing_new_and_says_so(study, site, orthanc, credentials, capsys):
    _upload(orthanc, synthetic_study(accession="ACC0001", seed=1))
    _run(capsys, orthanc)
    images = set(Image.objects.values_list("pk", "sha256"))

    out, _ = _run(capsys, orthanc)

    assert "nothing new to import" in out
    assert "1 study found, 0 case(s) created, 1 unchanged" in out
    assert set(Image.objects.values_list("pk", "sha256")) == images


def test_a_study_whose_instances_changed_is_reported_not_merged(
    study, site, orthanc, credentials, capsys
):
    synthetic = synthetic_study(accession="ACC0001", images=1, seed=1)
    _upload(orthanc, synthetic)
    _run(capsys, orthanc)
    grown = synthetic_study(accession="ACC0001", images=2, seed=7)
    extra = grown.instances[1]
    extra.StudyInstanceUID = synthetic.uid
    orthanc.upload(encode(extra))

    with pytest.raises(CommandError, match="1 stud"):
        _run(capsys, orthanc)

    err = capsys.readouterr().err
    assert f"changed    study {synthetic.uid}: case ACC0001 is already stored" in err
    assert "(1 stored, 2 in the archive now, 1 identical)" in err
    assert Case.objects.get(case_id="ACC0001").images.count() == 1


def test_a_query_filter_and_study_uids_choose_the_studies(
    study, site, orthanc, credentials, capsys
):
    chest = synthetic_study(accession="ACC0001", modality="CR", seed=1)
    ct = synthetic_study(accession="ACC0002", modality="CT", patient_id="MRN0042", seed=2)
    other = synthetic_study(accession="ACC0003", modality="CR", seed=3)
    _upload(orthanc, chest, ct, other)

    out, _ = _run(capsys, orthanc, "--query", "ModalitiesInStudy=CT")
    assert "1 study found, 1 case(s) created" in out
    assert set(Case.objects.values_list("case_id", flat=True)) == {"ACC0002"}
    assert Case.objects.get().modality == "CT"

    _run(capsys, orthanc, "--study-uid", other.uid, "--case-id-from", "study-uid")
    assert set(Case.objects.values_list("case_id", flat=True)) == {"ACC0002", other.uid}

    with pytest.raises(CommandError):
        _run(capsys, orthanc, "--study-uid", "1.2.3.4.5", "--query", "PatientID=MRN0042")
    assert "study 1.2.3.4.5: not in the archive or not matching the query" in (
        capsys.readouterr().err
    )


def test_paged_searches_find_every_study(study, site, orthanc, settings):
    studies = [synthetic_study(accession=f"ACC{n:04d}", images=1, seed=n) for n in range(5)]
    _upload(orthanc, *studies)
    archive = Archive(orthanc.dicomweb, username="archive", password="archive-secret", page_size=2)

    report = import_from_archive(study=study, archive=archive, site_code="north")

    assert report.studies_found == 5 and len(report.created) == 5 and report.ok


def test_a_malformed_instance_is_named_and_the_other_studies_are_kept(
    study, site, orthanc, credentials, capsys
):
    good = synthetic_study(accession="ACC0001", seed=1)
    bad = synthetic_study(accession="ACC0002", images=1, seed=2)
    broken = bad.instances[0]
    broken.PixelData = broken.PixelData[:100]  # a header promising more pixels than it holds
    _upload(orthanc, good, bad)

    with pytest.raises(CommandError, match="1 stud"):
        _run(capsys, orthanc)

    err = capsys.readouterr().err
    assert (
        f"study {bad.uid} series {broken.SeriesInstanceUID} instance {broken.SOPInstanceUID}"
        in (err)
    )
    assert list(Case.objects.values_list("case_id", flat=True)) == ["ACC0001"]
    # The refusal is stored, once: a second run refuses it again and adds nothing.
    [refusal] = ImportRefusal.objects.filter(study__slug="chest")
    assert (refusal.source, refusal.via) == ("dicomweb", "import_dicomweb")
    assert broken.SOPInstanceUID in refusal.item and refusal.reason
    with pytest.raises(CommandError, match="1 stud"):
        _run(capsys, orthanc)
    assert ImportRefusal.objects.filter(study__slug="chest").count() == 1


def test_an_unreachable_archive_is_a_clear_error(study, site, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/dicom-web"

    with pytest.raises(CommandError, match=f"cannot reach the archive at {url}"):
        call_command("import_dicomweb", "chest", "--url", url, "--site", "north")
    assert not Case.objects.exists()


def test_wrong_credentials_are_reported(study, site, orthanc, settings):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = "archive", "wrong"
    with pytest.raises(CommandError, match="answered 401 not authorized"):
        call_command("import_dicomweb", "chest", "--url", orthanc.dicomweb, "--site", "north")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--query", "PatientID"], "must be KEYWORD=VALUE"),
        (["--query", "Nonsense=1"], "not a DICOM attribute keyword"),
        (["--site", "nowhere"], "no site 'nowhere'"),
        (["--url", "http://user:pw@127.0.0.1:9/dicom-web"], "not in the URL"),
        (["--url", "ftp://127.0.0.1/dicom-web"], "must start with http"),
    ],
)
def test_bad_options_are_refused_before_asking_the_archive(study, site, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_dicomweb", "chest", "--url", "http://127.0.0.1:9/dicom-web", *args)


def test_token_and_basic_credentials_together_are_refused(study, site, settings):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = "a", "b"
    settings.DICOMWEB_TOKEN = "t"
    with pytest.raises(CommandError, match="not both"):
        call_command("import_dicomweb", "chest", "--url", "http://127.0.0.1:9/dicom-web")


def test_a_case_imported_from_the_archive_can_be_pre_read(orthanc, credentials, capsys, tmp_path):
    model = register_random_model(tmp_path)
    study = StudyFactory(slug="chest")
    pin_model(study=study, model=model)
    for order, code in enumerate(FINDING_TYPES, start=1):
        FindingType.objects.create(study=study, code=code, name=FINDING_NAMES[code], order=order)
    SiteFactory(code="north")
    _upload(orthanc, synthetic_study(accession="ACC0001", images=1, seed=1))
    _run(capsys, orthanc)

    outcome = run_prereads_now(study=study, model=model)

    preread = case_preread(Case.objects.get(case_id="ACC0001"), model)
    assert outcome.done == 1 and preread is not None and preread.status == PreReadStatus.DONE
    assert preread.findings.count() == len(FINDING_TYPES)


def test_a_locked_study_refuses_the_import_before_asking_the_archive(study, site):
    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()

    # The URL leads nowhere: a refusal that asked the archive would say it cannot reach it.
    with pytest.raises(CommandError, match=r"study chest is locked .*; no case was imported"):
        call_command("import_dicomweb", "chest", "--url", "http://127.0.0.1:9/dicom-web")


def test_the_only_site_is_used_when_none_is_named(study, site, orthanc, credentials, capsys):
    _upload(orthanc, synthetic_study(accession="ACC0001", images=1))
    call_command("import_dicomweb", "chest", "--url", orthanc.dicomweb)
    assert Case.objects.get().site == site
    SiteFactory(code="south")
    with pytest.raises(CommandError, match="--site"):
        call_command("import_dicomweb", "chest", "--url", orthanc.dicomweb)


def test_an_instance_the_archive_does_not_have_is_named_with_the_status(orthanc):
    synthetic = synthetic_study(images=1)
    _upload(orthanc, synthetic)
    archive = Archive(orthanc.dicomweb, username="archive", password="archive-secret")
    listed = archive.instances(synthetic.uid)[0]
    missing = InstanceRecord(listed.study_uid, listed.series_uid, "1.2.3.999", None, None)

    assert archive.retrieve(listed, max_bytes=10**6) == synthetic.encoded()[0]
    with pytest.raises(ArchiveError, match=rf"{re.escape(missing.where)}: .* answered 404"):
        archive.retrieve(missing, max_bytes=10**6)
    with pytest.raises(ArchiveError, match="larger than 0 MiB"):
        archive.retrieve(listed, max_bytes=1000)


class _RecordingArchive(BaseHTTPRequestHandler):
    """An archive with no study that remembers the Authorization header it was sent."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_bearer_token_from_the_environment_is_sent(study, site, settings, capsys):
    settings.DICOMWEB_USERNAME = settings.DICOMWEB_PASSWORD = ""
    settings.DICOMWEB_TOKEN = "s3cret-token"
    server = HTTPServer(("127.0.0.1", 0), _RecordingArchive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/dicom-web"
        call_command("import_dicomweb", "chest", "--url", url)
    finally:
        server.shutdown()
        thread.join()
    assert _RecordingArchive.seen == ["Bearer s3cret-token"]
    assert "0 studies found, 0 case(s) created" in capsys.readouterr().out
