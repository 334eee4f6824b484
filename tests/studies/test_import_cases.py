"""import_cases: real scanner files in, de-identified originals and viewer derivatives out."""

from __future__ import annotations

import io
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.core import serializers
from django.core.management import CommandError, call_command
from django.utils import timezone

from studyplatform.studies.imaging import read_dicom_pixels, read_png
from studyplatform.studies.models import Case, Image, StudyState, Truth
from tests.factories import FindingTypeFactory, SiteFactory, StudyFactory
from tests.studies.import_fixtures import (
    jpeg_with_phi,
    leaked_tokens,
    png_with_phi,
    pydicom_file,
    with_phi,
    write_import_dir,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = StudyFactory(slug="lung")
    FindingTypeFactory(study=study, code="nodule", name="Nodule")
    FindingTypeFactory(study=study, code="pneumothorax", name="Pneumothorax")
    SiteFactory(code="north")
    SiteFactory(code="south")
    return study


def _run(study, folder: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_cases", study.slug, str(folder), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _run_failing(study, folder: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="not imported"):
        call_command("import_cases", study.slug, str(folder), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _stored(image: Image) -> pydicom.Dataset:
    return pydicom.dcmread(image.original.path)


# (file shipped with pydicom or pydicom-data, transfer syntax, modality override or "")
REAL_FILES = [
    ("CT_small.dcm", "1.2.840.10008.1.2.1", ""),
    ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5", ""),
    ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", ""),
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", ""),
    # A nuclear-medicine file is the only JPEG lossless (process 14) sample that ships; the
    # modality column overrides its NM, which the study's modalities do not include.
    ("JPEG-LL.dcm", "1.2.840.10008.1.2.4.70", "MG"),
    ("RG1_J2KR.dcm", "1.2.840.10008.1.2.4.90", ""),  # chest CR, 1955 x 1841, JPEG 2000
]


def test_real_files_of_every_transfer_syntax_are_imported(study, tmp_path):
    rows = [
        {"case_id": f"C{i}", "site": "north", "images": name, "modality": modality}
        for i, (name, _, modality) in enumerate(REAL_FILES, start=1)
    ]
    files = {name: pydicom_file(name).read_bytes() for name, _, _ in REAL_FILES}
    folder = write_import_dir(tmp_path / "in", rows, files)

    out, _ = _run(study, folder)

    assert f"{len(REAL_FILES)} imported, 0 unchanged" in out
    for i, (name, syntax, _) in enumerate(REAL_FILES, start=1):
        case = Case.objects.get(study=study, case_id=f"C{i}")
        image = case.images.get()
        source = pydicom.dcmread(pydicom_file(name))
        stored = _stored(image)
        assert image.transfer_syntax == syntax
        assert stored.file_meta.TransferSyntaxUID == syntax  # stored as sent, compressed
        assert stored.PatientIdentityRemoved == "YES"
        assert stored.PatientID == f"C{i}"
        expected = read_dicom_pixels(pydicom_file(name)).pixels.astype(np.int64)
        assert np.array_equal(read_dicom_pixels(image.original.path).pixels, expected)
        display = read_png(image.display.path)
        assert np.array_equal(display.astype(np.int64) - image.display_offset, expected)
        assert (image.rows, image.columns) == display.shape
        assert case.manufacturer == str(source.Manufacturer)
        assert image.sha256 != image.source_sha256
    chest = Case.objects.get(case_id="C6")
    assert (chest.modality, chest.manufacturer) == ("CR", "Philips Medical Systems")
    ct = Case.objects.get(case_id="C1")
    assert (ct.modality, ct.manufacturer_model) == ("CT", "RHAPSODE")
    assert ct.images.get().display_offset > 0  # Hounsfield units below zero
    assert Case.objects.get(case_id="C5").modality == "MG"


def test_phi_never_reaches_the_stored_files_or_the_database(study, tmp_path):
    files = {
        "Quixote_Alonso_ct.dcm": with_phi("CT_small.dcm"),
        "Quixote_Alonso_mr.dcm": with_phi("MR_small_RLE.dcm"),
        "scan.png": png_with_phi(),
        "photo.jpg": jpeg_with_phi(),
    }
    rows = [
        {
            "case_id": "P1",
            "site": "north",
            "images": "Quixote_Alonso_ct.dcm;Quixote_Alonso_mr.dcm",
            "modality": "CT",
        },
        {"case_id": "P2", "site": "south", "images": "scan.png;photo.jpg", "modality": "CR"},
    ]
    for name in ("scan.png", "photo.jpg"):
        assert leaked_tokens(files[name])  # the plant worked
    folder = write_import_dir(tmp_path / "in", rows, files)

    _run(study, folder)

    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 8  # original and derivative for each of 4 images
    for path in stored:
        assert leaked_tokens(path.read_bytes()) == [], path
        assert leaked_tokens(str(path).encode()) == [], path
    dump = serializers.serialize(
        "json", [*Case.objects.all(), *Image.objects.all(), *Truth.objects.all()]
    )
    assert leaked_tokens(dump.encode()) == []
    formats = sorted(Image.objects.values_list("source_format", flat=True))
    assert formats == ["dicom", "dicom", "jpeg", "png"]


def test_running_the_import_again_changes_nothing(study, tmp_path):
    rows = [
        {"case_id": "A1", "site": "north", "images": "ct.dcm", "truth_nodule": "1"},
        {"case_id": "A2", "site": "south", "images": "mr.dcm", "truth_nodule": "0"},
    ]
    files = {
        "ct.dcm": with_phi("CT_small.dcm"),
        "mr.dcm": pydicom_file("MR_small.dcm").read_bytes(),
    }
    folder = write_import_dir(tmp_path / "in", rows, files)
    _run(study, folder)
    before = sorted(Image.objects.values_list("pk", "sha256", "original", "display"))
    stored = {p: p.stat().st_mtime_ns for p in Path(settings.MEDIA_ROOT).rglob("*.*")}

    out, _ = _run(study, folder)

    assert "0 imported, 2 unchanged (already stored), 0 error(s)" in out
    assert sorted(Image.objects.values_list("pk", "sha256", "original", "display")) == before
    assert {p: p.stat().st_mtime_ns for p in Path(settings.MEDIA_ROOT).rglob("*.*")} == stored
    assert Truth.objects.filter(case__case_id="A1", present=True).count() == 1
    assert Truth.objects.count() == 2


def test_bad_files_are_reported_and_the_good_ones_imported(study, tmp_path):
    rows = [
        {"case_id": "G1", "site": "north", "images": "good.dcm"},
        {"case_id": "B1", "site": "north", "images": "truncated.dcm"},
        {"case_id": "B2", "site": "north", "images": "notes.dcm"},
        {"case_id": "B3", "site": "north", "images": "plan.dcm"},
        {"case_id": "B4", "site": "north", "images": "absent.dcm"},
        {"case_id": "B5", "site": "east", "images": "good2.dcm"},
        {"case_id": "G2", "site": "south", "images": "good3.png", "modality": "DX"},
    ]
    files = {
        "good.dcm": pydicom_file("MR_small.dcm").read_bytes(),
        "truncated.dcm": pydicom_file("MR_truncated.dcm").read_bytes(),
        "notes.dcm": b"Just some text, not an image at all.\n" * 10,
        "plan.dcm": pydicom_file("rtplan.dcm").read_bytes(),
        "good2.dcm": pydicom_file("CT_small.dcm").read_bytes(),
        "good3.png": png_with_phi(),
        "stray.dcm": pydicom_file("CT_small.dcm").read_bytes(),
    }
    folder = write_import_dir(tmp_path / "in", rows, files)

    out, err = _run_failing(study, folder)

    assert sorted(Case.objects.values_list("case_id", flat=True)) == ["G1", "G2"]
    assert "2 imported, 0 unchanged (already stored), 6 error(s)" in out
    assert "truncated.dcm: cannot decode pixel data" in err
    assert "notes.dcm: not a DICOM, PNG or JPEG file" in err
    assert "plan.dcm: DICOM file has no pixel data (not an image)" in err
    assert "absent.dcm: listed for case B4 but not found" in err
    assert "manifest.csv line 7: case B5: unknown site 'east'" in err
    assert "stray.dcm: not listed in manifest.csv" in err


def test_malformed_manifest_rows_are_reported_by_line(study, tmp_path):
    rows = [
        {"case_id": "OK1", "site": "north", "images": "a.dcm", "truth_nodule": "1"},
        {"case_id": "", "site": "north", "images": "b.dcm", "truth_nodule": ""},
        {"case_id": "X2", "site": "north", "images": "", "truth_nodule": ""},
        {"case_id": "X3", "site": "north", "images": "b.dcm", "truth_nodule": "yes"},
        {"case_id": "OK1", "site": "north", "images": "b.dcm", "truth_nodule": ""},
        {"case_id": "X5", "site": "north", "images": "../secret.dcm", "truth_nodule": ""},
    ]
    files = {"a.dcm": pydicom_file("MR_small.dcm").read_bytes(), "b.dcm": b""}
    folder = write_import_dir(tmp_path / "in", rows, files)

    _, err = _run_failing(study, folder)

    assert list(Case.objects.values_list("case_id", flat=True)) == ["OK1"]
    assert "manifest.csv line 3: case_id '' must be" in err
    assert "manifest.csv line 4: images is empty" in err
    assert "manifest.csv line 5: truth_nodule must be 0, 1 or empty, not 'yes'" in err
    assert "manifest.csv line 6: case_id 'OK1' is already on line 2" in err
    assert "manifest.csv line 7: image name '../secret.dcm' must be a relative path" in err


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["case_id", "images"], "missing column(s): site"),
        (["case_id", "site", "images", "truth_fracture"], "unknown finding column(s) truth_frac"),
        (["case_id", "site", "images", "modalty"], "unknown column(s) modalty"),
    ],
)
def test_a_bad_manifest_header_imports_nothing(study, tmp_path, columns, message):
    row = {c: "" for c in columns} | {"case_id": "H1", "images": "a.dcm"}
    if "site" in columns:
        row["site"] = "north"
    files = {"a.dcm": pydicom_file("MR_small.dcm").read_bytes()}
    folder = write_import_dir(tmp_path / "in", [row], files, columns=columns)

    _, err = _run_failing(study, folder)

    assert message in err
    assert not Case.objects.exists()


def test_same_case_id_with_other_images_is_a_reported_conflict(study, tmp_path):
    first = {"a.dcm": pydicom_file("MR_small.dcm").read_bytes()}
    folder = write_import_dir(
        tmp_path / "in", [{"case_id": "D1", "site": "north", "images": "a.dcm"}], first
    )
    _run(study, folder)
    second = {"b.dcm": pydicom_file("CT_small.dcm").read_bytes()}
    folder = write_import_dir(
        tmp_path / "in2", [{"case_id": "D1", "site": "north", "images": "b.dcm"}], second
    )

    _, err = _run_failing(study, folder)

    assert "case D1: case already exists in lung with other images" in err
    assert Case.objects.get(case_id="D1").modality == "MR"


def test_truth_columns_are_stored_as_imported_truth(study, tmp_path):
    rows = [
        {"case_id": "T1", "site": "north", "images": "a.dcm", "truth_nodule": "1",
         "truth_pneumothorax": "0"},
        {"case_id": "T2", "site": "north", "images": "b.dcm", "truth_nodule": "",
         "truth_pneumothorax": "1"},
    ]  # fmt: skip
    files = {
        "a.dcm": pydicom_file("MR_small.dcm").read_bytes(),
        "b.dcm": pydicom_file("CT_small.dcm").read_bytes(),
    }
    _run(study, write_import_dir(tmp_path / "in", rows, files))

    assert sorted(
        Truth.objects.values_list("case__case_id", "finding_type__code", "present", "source")
    ) == [
        ("T1", "nodule", True, "import"),
        ("T1", "pneumothorax", False, "import"),
        ("T2", "pneumothorax", True, "import"),
    ]


def test_a_locked_study_refuses_the_import(study, tmp_path):
    study.state = StudyState.LOCKED
    study.opened_at = study.locked_at = timezone.now()
    study.save()
    files = {"a.dcm": pydicom_file("MR_small.dcm").read_bytes()}
    folder = write_import_dir(
        tmp_path / "in", [{"case_id": "L1", "site": "north", "images": "a.dcm"}], files
    )

    with pytest.raises(CommandError, match="locked"):
        call_command("import_cases", study.slug, str(folder), stdout=io.StringIO())
    assert not Case.objects.exists()


def test_each_imported_case_is_audited_once_with_hashes_not_names(study, tmp_path):
    from studyplatform.audit.models import AuditEvent

    rows = [{"case_id": "U1", "site": "north", "images": "Quixote.dcm", "truth_nodule": "1"}]
    folder = write_import_dir(tmp_path / "in", rows, {"Quixote.dcm": with_phi("MR_small.dcm")})
    _run(study, folder)
    _run(study, folder)

    event = AuditEvent.objects.get(action="case.import")
    assert event.study == study
    after: dict = event.after or {}
    assert after["case_id"] == "U1" and after["truth"] == {"nodule": True}
    assert len(after["images"][0]) == 64
    assert event.reason == "import_cases manifest.csv line 2"
    assert leaked_tokens(str(event.after).encode()) == []


def test_a_burned_in_annotation_is_flagged_for_review(study, tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    rows = [{"case_id": "B1", "site": "north", "images": "b.dcm"}]

    out, _ = _run(study, write_import_dir(tmp_path / "in", rows, {"b.dcm": buffer.getvalue()}))

    assert "review     B1 image 1: header says burned-in annotation" in out
    assert Image.objects.get().burned_in_annotation == "YES"
