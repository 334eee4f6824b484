"""Fuzzing the imports: malformed manifests, truth files and DICOM bytes get a clear error.

Each example must end in the import's own refusal (a Problem naming the row or file, an
ImportRefusedError, a CommandError, an ImageError) and leave every stored row as it was.
"""

from __future__ import annotations

import io
from io import StringIO
from pathlib import Path

import pydicom
import pytest
from django.core.management import CommandError, call_command
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from studyplatform.studies.deid import DeidentificationError
from studyplatform.studies.imaging import ImageError
from studyplatform.studies.importing import (
    MANIFEST_NAME,
    PreparedImage,
    Problem,
    Upload,
    prepare_image,
    read_manifest,
)
from studyplatform.studies.services import ImportRefusedError, receive_case
from tests.factories import CaseFactory, FindingTypeFactory, SiteFactory, StudyFactory
from tests.fuzz.conftest import (
    FUZZ,
    HOSTILE,
    hostile_text,
    refusal_reasons,
    snapshot,
    trial_data,
)

pytestmark = pytest.mark.django_db

MANIFEST_HEADERS = ("case_id", "site", "images", "modality", "truth_nodule", "truth_bogus", "")


def _cell() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_text,
        st.sampled_from(["C1", "north", "a.dcm", "a.dcm;a.dcm", "../x.dcm", "/etc/passwd", "CR"]),
        st.sampled_from(["0", "1", "2", "yes", "", ";", '"', '""', "\r\n"]),
    )


@st.composite
def csv_text(draw: st.DrawFn, headers: tuple[str, ...]) -> str:
    """CSV-ish text: a header of known and unknown columns, ragged rows, stray quotes."""
    columns = draw(st.lists(st.sampled_from(headers), min_size=0, max_size=6))
    rows = draw(st.lists(st.lists(_cell(), max_size=8), max_size=5))
    separator = draw(st.sampled_from([",", ";", "\t", ",,"]))
    lines = [separator.join(columns)] + [separator.join(row) for row in rows]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline, '"', "\x00"]))


@pytest.fixture
def study():
    study = StudyFactory(slug="fuzz")
    FindingTypeFactory(study=study, code="nodule")
    SiteFactory(code="north")
    CaseFactory(study=study, case_id="C1", site=SiteFactory(code="north"))
    return study


# --- manifest.csv ---------------------------------------------------------------------------


@FUZZ
@given(text=csv_text(MANIFEST_HEADERS))
@example(text="case_id,site,images\n" + '"' + "x" * 200_000 + '",north,a.dcm\n')
@example(text="\ufeffcase_id,site,images\nC9,north,a.dcm\x00\n")
@example(text="")
def test_malformed_manifest_is_reported_never_raised(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("manifest")
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8", newline="")
    rows, problems = read_manifest(folder / MANIFEST_NAME, finding_codes={"nodule"})
    assert all(isinstance(p, Problem) and p.where and p.reason for p in problems)
    for row in rows:
        assert row.case_id and row.site and row.images


@FUZZ
@given(text=csv_text(MANIFEST_HEADERS), raw=st.binary(max_size=64))
def test_import_cases_with_a_malformed_manifest_stores_nothing(study, tmp_path_factory, text, raw):
    folder = tmp_path_factory.mktemp("import")
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8", newline="")
    (folder / "a.dcm").write_bytes(raw)  # never a readable image
    before = trial_data()
    with pytest.raises(CommandError, match=r"not imported"):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())
    assert trial_data() == before
    # What was refused is recorded, each with its reason.
    assert all(reason.strip() for reason in refusal_reasons())


def test_manifest_that_is_not_utf8_is_one_problem(tmp_path):
    (tmp_path / MANIFEST_NAME).write_bytes(b"case_id,site,images\n\xff\xfe\x00bad\n")
    rows, problems = read_manifest(tmp_path / MANIFEST_NAME, finding_codes=set())
    assert rows == [] and "cannot be read as UTF-8" in problems[0].reason


# --- truth CSV ------------------------------------------------------------------------------

TRUTH_HEADERS = ("case_id", "finding", "present", "source", "location", "extra")


@FUZZ
@given(text=csv_text(TRUTH_HEADERS))
@example(text="case_id,finding,present\n" + '"' + "C" * 200_000 + '",nodule,1\n')
@example(text='case_id,finding,present,location\nC1,nodule,1,"' + "[" * 100_000 + '"\n')
@example(text="case_id,finding,present\nC1,nodule,1\nC1,nodule,=cmd|' /C calc'!A0\n")
@example(text="case_id,finding,present\nC1,nodule,1\x00\n")
def test_malformed_truth_file_is_refused_whole(study, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("truth") / "truth.csv"
    path.write_text(text, encoding="utf-8", newline="")
    before = snapshot()
    try:
        call_command("import_truth", study.slug, str(path), stdout=StringIO(), stderr=StringIO())
    except CommandError as error:
        assert str(error)
        assert snapshot() == before
    # A file that happens to be valid (C1,nodule,0/1) is simply imported.


def test_truth_file_in_another_encoding_is_refused(study, tmp_path):
    path = tmp_path / "truth.csv"
    path.write_bytes("case_id,finding,present\nC1,nodule,1\n".encode("utf-16"))
    before = snapshot()
    with pytest.raises(CommandError):
        call_command("import_truth", study.slug, str(path), stdout=StringIO(), stderr=StringIO())
    assert snapshot() == before


# --- DICOM bytes ----------------------------------------------------------------------------


def _valid_dicom() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


VALID = _valid_dicom()


@st.composite
def broken_dicom(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["truncated", "flipped", "garbage", "headerless", "spliced"]))
    if kind == "truncated":
        return VALID[: draw(st.integers(0, len(VALID) - 1))]
    if kind == "flipped":
        data = bytearray(VALID)
        # Header bytes (the first ~1 KiB) hold lengths, VRs and tags: flip some there.
        for position in draw(st.lists(st.integers(128, 1200), min_size=1, max_size=8)):
            data[position] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == "garbage":
        return b"\0" * 128 + b"DICM" + draw(st.binary(max_size=512))
    if kind == "headerless":
        return b"\x08\x00" + draw(st.binary(min_size=7, max_size=512))
    cut = draw(st.integers(132, len(VALID) - 1))
    return VALID[:cut] + draw(st.binary(max_size=64)) + VALID[cut:]


@FUZZ
@given(data=broken_dicom())
@example(data=b"")
@example(data=b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
@example(data=b"\xff\xd8\xff\xe0garbage")
def test_broken_dicom_bytes_give_an_image_error_naming_the_file(data):
    try:
        prepared = prepare_image(Upload(name="scan.dcm", data=data), pseudonym="C9", salt="s")
    except (ImageError, DeidentificationError) as error:
        assert str(error).startswith("scan.dcm: ")
    else:
        assert isinstance(prepared, PreparedImage)  # a harmless flip still yields an image


@FUZZ
@given(data=broken_dicom(), case_id=st.one_of(st.just("C9"), hostile_text))
def test_arriving_case_with_broken_dicom_is_refused_and_stores_nothing(study, data, case_id):
    before = snapshot()
    try:
        receive_case(
            study=study,
            case_id=case_id,
            site_code="north",
            uploads=[Upload(name="scan.dcm", data=data)],
            modality="CT",
        )
    except ImportRefusedError as error:
        assert error.problems and all(p.reason for p in error.problems)
        assert snapshot() == before


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_case_ids_and_sites_are_refused_by_name(study, text):
    before = snapshot()
    with pytest.raises(ImportRefusedError) as refused:
        receive_case(
            study=study,
            case_id=text,
            site_code=text,
            uploads=[Upload(name="scan.dcm", data=VALID)],
        )
    assert "case_id" in str(refused.value) or "unknown site" in str(refused.value)
    assert snapshot() == before


def test_path_like_image_names_never_leave_the_import_folder(study, tmp_path):
    secret = tmp_path / "secret.dcm"
    secret.write_bytes(VALID)
    folder = tmp_path / "import"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text(
        "case_id,site,images\nC7,north,../secret.dcm\nC8,north,/etc/passwd\n"
    )
    before = trial_data()
    with pytest.raises(CommandError):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())
    assert trial_data() == before
    assert len(refusal_reasons()) == 2  # one refusal per manifest row, each with its reason
    assert not Path(secret).with_suffix(".imported").exists()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png(40, 30)


@FUZZ
@given(cut=st.integers(0, len(PNG) - 1), flips=st.lists(st.integers(8, len(PNG) - 1), max_size=4))
def test_broken_png_bytes_give_an_image_error_naming_the_file(cut, flips):
    data = bytearray(PNG[:cut] if cut > 8 else PNG)
    for position in flips:
        if position < len(data):
            data[position] ^= 0x5A
    try:
        prepare_image(Upload(name="scan.png", data=bytes(data)), pseudonym="C9", salt="s")
    except ImageError as error:
        assert str(error).startswith("scan.png: ")


def test_png_that_claims_a_giant_size_is_refused_not_decoded():
    # A valid header declaring 100000 x 100000 pixels: a decompression bomb.
    data = bytearray(PNG)
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    with pytest.raises(ImageError, match=r"^bomb\.png: "):
        prepare_image(Upload(name="bomb.png", data=bytes(data)), pseudonym="C9", salt="s")
