"""De-identification cleans what the Basic Profile table leaves open (file meta information,
overlays, curves, retired groups, private creators, deep sequences) instead of refusing the
file, and nothing planted there reaches any stored byte."""

from __future__ import annotations

import io
import json
from io import StringIO
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.core import serializers
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset
from pydicom.uid import UID

from studyplatform.studies.deid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from studyplatform.studies.models import Case, Image, Site
from studyplatform.studies.services import issue_site_token
from tests.factories import FindingTypeFactory, SiteFactory, StudyFactory
from tests.studies.import_fixtures import (
    PHI_ID,
    PHI_NAME,
    leaked_tokens,
    pydicom_file,
    with_phi,
    write_import_dir,
)

pytestmark = pytest.mark.django_db

REQUIRED_META = {
    "FileMetaInformationVersion",
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
}


@pytest.fixture
def study():
    study = StudyFactory(slug="lung")
    FindingTypeFactory(study=study, code="nodule")
    SiteFactory(code="north")
    return study


def _save(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _phi_in_file_meta(name: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(with_phi(name)))
    ds.file_meta.SourceApplicationEntityTitle = "ROCINANTE"
    ds.file_meta.SendingApplicationEntityTitle = "QUIXOTE"
    ds.file_meta.ReceivingApplicationEntityTitle = "PANZA"
    ds.file_meta.PrivateInformationCreatorUID = UID("1.2.826.0.1.3680043.8.498.1")
    ds.file_meta.PrivateInformation = f"{PHI_NAME} {PHI_ID}".encode()
    return _save(ds)


def _phi_in_overlays_and_curves(name: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(with_phi(name)))
    for group in (0x6000, 0x601E):
        ds.add_new((group, 0x0010), "US", 8)  # OverlayRows
        ds.add_new((group, 0x0011), "US", 8)  # OverlayColumns
        ds.add_new((group, 0x0022), "LO", f"Marks of {PHI_NAME}")  # OverlayDescription
        ds.add_new((group, 0x1500), "LO", PHI_ID)  # OverlayLabel
        ds.add_new((group, 0x3000), "OW", f"{PHI_NAME}.".encode())  # OverlayData
    ds.add_new((0x5000, 0x0022), "LO", f"Curve of {PHI_NAME}")  # CurveDescription
    ds.add_new((0x5000, 0x2500), "LO", PHI_ID)  # CurveLabel
    ds.add_new((0x4008, 0x0115), "LT", f"Interpreted for {PHI_NAME}")  # InterpretationText
    ds.add_new((0x4000, 0x4000), "LT", f"Text about {PHI_ID}")  # TextComments
    return _save(ds)


def _phi_deep_in_sequences(name: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(with_phi(name)))
    deepest = Dataset()
    deepest.PatientName = PHI_NAME
    deepest.ImageComments = f"seen by {PHI_NAME}"
    deepest.add_new((0x6000, 0x0022), "LO", PHI_NAME)
    deepest.private_block(0x0029, "ROCINANTE GENERAL", create=True).add_new(0x01, "LO", PHI_ID)
    middle = Dataset()
    middle.InstitutionName = "Rocinante General Hospital"
    middle.ReferencedPatientSequence = [deepest]
    top = Dataset()
    top.CodeValue, top.CodingSchemeDesignator, top.CodeMeaning = "T-D3000", "SRT", "Chest"
    top.RequestAttributesSequence = [middle]
    ds.AnatomicRegionSequence = [top]
    ds.private_block(0x0009, "QUIXOTE SITE", create=True).add_new(0x10, "LO", "plain value")
    return _save(ds)


PLANTS = [
    ("meta.dcm", _phi_in_file_meta),
    ("overlays.dcm", _phi_in_overlays_and_curves),
    ("sequences.dcm", _phi_deep_in_sequences),
]


def _every_stored_byte() -> list[tuple[Path, bytes]]:
    files = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    return [(path, path.read_bytes()) for path in files]


def test_planted_phi_is_cleaned_not_refused_by_import_cases(study, tmp_path):
    rows: list[dict[str, str]] = []
    files: dict[str, bytes] = {}
    for name, plant in PLANTS:
        for source in ("MR_small.dcm", "MR_small_RLE.dcm"):
            file_name = f"{source[:-4]}-{name}"
            files[file_name] = plant(source)
            assert len(leaked_tokens(files[file_name])) >= 3  # the plant worked
            rows.append({"case_id": f"C{len(rows) + 1}", "site": "north", "images": file_name})
    folder = write_import_dir(tmp_path / "in", rows, files)

    out = StringIO()
    call_command("import_cases", study.slug, str(folder), stdout=out, stderr=StringIO())

    assert f"{len(rows)} imported" in out.getvalue()
    stored = _every_stored_byte()
    assert len(stored) == 2 * len(rows)
    for path, data in stored:
        assert leaked_tokens(data) == [], path
    dump = serializers.serialize("json", [*Case.objects.all(), *Image.objects.all()])
    assert leaked_tokens(dump.encode()) == []


def test_the_stored_file_meta_holds_only_the_required_elements(study, tmp_path):
    source = _phi_in_file_meta("MR_small.dcm")
    original_uid = pydicom.dcmread(io.BytesIO(source)).SOPInstanceUID
    rows = [{"case_id": "M1", "site": "north", "images": "meta.dcm"}]
    folder = write_import_dir(tmp_path / "in", rows, {"meta.dcm": source})

    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())

    ds = pydicom.dcmread(Image.objects.get().original.path)
    assert {element.keyword for element in ds.file_meta} - {
        "FileMetaInformationGroupLength"
    } == REQUIRED_META
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != original_uid
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert not any(element.tag.is_private for element in ds.iterall())
    assert not [e for e in ds.iterall() if 0x5000 <= e.tag.group <= 0x601E]


def test_overlays_curves_and_private_creators_are_gone_at_every_depth(study, tmp_path):
    rows = [
        {"case_id": "O1", "site": "north", "images": "overlays.dcm"},
        {"case_id": "S1", "site": "north", "images": "sequences.dcm"},
    ]
    files = {
        "overlays.dcm": _phi_in_overlays_and_curves("MR_small.dcm"),
        "sequences.dcm": _phi_deep_in_sequences("MR_small.dcm"),
    }
    folder = write_import_dir(tmp_path / "in", rows, files)

    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())

    for image in Image.objects.all():
        ds = pydicom.dcmread(image.original.path)
        groups = {element.tag.group for element in ds.iterall()}
        assert not groups & {0x4000, 0x4008, 0x5000, 0x6000, 0x601E}, image
        assert not [g for g in groups if g % 2], image  # no private groups, no creators
    kept = pydicom.dcmread(Image.objects.get(case__case_id="S1").original.path)
    assert kept.AnatomicRegionSequence[0].CodeMeaning == "Chest"  # the clinical code stays


def test_a_name_the_profile_keeps_still_stops_the_file(study, tmp_path):
    # The leftover check is the last net: a retained attribute holding a name is not guessed at.
    ds = pydicom.dcmread(io.BytesIO(with_phi("MR_small.dcm")))
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X", "99L", PHI_NAME
    ds.AnatomicRegionSequence = [code]
    rows = [
        {"case_id": "BAD", "site": "north", "images": "bad.dcm"},
        {"case_id": "OK", "site": "north", "images": "ok.dcm"},
    ]
    files = {"bad.dcm": _save(ds), "ok.dcm": _phi_in_file_meta("CT_small.dcm")}
    folder = write_import_dir(tmp_path / "in", rows, files)

    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=err)

    assert "bad.dcm: identifying values remain after de-identification in CodeMeaning" in (
        err.getvalue()
    )
    assert list(Case.objects.values_list("case_id", flat=True)) == ["OK"]
    for path, data in _every_stored_byte():
        assert leaked_tokens(data) == [], path


def test_the_arrival_api_stores_cleaned_files_only(client, study):
    token = issue_site_token(study=study, site=Site.objects.get(code="north"), name="router")
    # One case per planted file: copies of one slice in one series are refused as duplicates.
    for number, (name, plant) in enumerate(PLANTS, start=1):
        image = SimpleUploadedFile(name, plant("CT_small.dcm"), content_type="application/dicom")
        response = client.post(
            f"/api/studies/{study.slug}/cases/",
            {"metadata": json.dumps({"case_id": f"P-{number:03d}"}), "images": [image]},
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

        assert response.status_code == 201, response.content
        assert leaked_tokens(response.content) == []
    stored = _every_stored_byte()
    assert len(stored) == 2 * len(PLANTS)
    for path, data in stored:
        assert leaked_tokens(data) == [], path


def test_the_arrival_api_refuses_an_unauthenticated_sender(client, study):
    image = SimpleUploadedFile("meta.dcm", _phi_in_file_meta("CT_small.dcm"))
    response = client.post(
        f"/api/studies/{study.slug}/cases/",
        {"metadata": json.dumps({"case_id": "P-001"}), "images": [image]},
    )
    assert response.status_code in (401, 403)
    assert not Case.objects.exists()


def test_the_real_files_keep_their_pixels(study, tmp_path):
    rows = [{"case_id": "R1", "site": "north", "images": "r.dcm"}]
    source = _phi_in_overlays_and_curves("MR_small_RLE.dcm")
    folder = write_import_dir(tmp_path / "in", rows, {"r.dcm": source})

    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())

    stored = pydicom.dcmread(Image.objects.get().original.path)
    original = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert (stored.pixel_array == original.pixel_array).all()
