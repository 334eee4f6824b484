"""Decompression bombs: files whose header promises more pixels than the limit are refused,
by name, before anything is decoded, through both doors cases come in."""

from __future__ import annotations

import io
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from studyplatform.studies.imaging import (
    DecodedSize,
    ImageTooLargeError,
    bitmap_decoded_size,
    read_dicom_pixels,
    read_png,
)
from studyplatform.studies.models import Case, Image, Site
from studyplatform.studies.services import issue_site_token
from tests.factories import FindingTypeFactory, SiteFactory, StudyFactory
from tests.studies.import_fixtures import (
    png_bomb,
    pydicom_file,
    rle_bomb_dicom,
    write_import_dir,
)

LIMIT = 128 * 1024 * 1024


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"bomb.png": png_bomb(13_000), "bomb.dcm": rle_bomb_dicom(12_000)}


@pytest.fixture
def study(db):
    study = StudyFactory(slug="lung")
    FindingTypeFactory(study=study, code="nodule")
    SiteFactory(code="north")
    return study


def test_the_hostile_files_are_small_on_disk_and_huge_decoded(bombs):
    assert len(bombs["bomb.png"]) < 200_000
    assert len(bombs["bomb.dcm"]) < 5_000_000
    header = pydicom.dcmread(io.BytesIO(bombs["bomb.dcm"]), stop_before_pixels=True)
    assert (header.Rows, header.Columns, header.BitsAllocated) == (12_000, 12_000, 16)
    assert bitmap_decoded_size(bombs["bomb.png"]) == DecodedSize(rows=13_000, columns=13_000)


def test_import_cases_refuses_bombs_by_name_and_imports_the_other_cases(
    study, tmp_path, bombs, settings
):
    assert settings.IMAGE_MAX_DECODED_BYTES == LIMIT  # the default the messages below name
    rows = [
        {"case_id": "GOOD", "site": "north", "images": "good.dcm"},
        {"case_id": "PNG", "site": "north", "images": "bomb.png", "modality": "DX"},
        {"case_id": "RLE", "site": "north", "images": "bomb.dcm"},
    ]
    files = {"good.dcm": pydicom_file("MR_small_RLE.dcm").read_bytes(), **bombs}
    folder = write_import_dir(tmp_path / "in", rows, files)

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 file"):
        call_command("import_cases", study.slug, str(folder), stdout=out, stderr=err)

    assert list(Case.objects.values_list("case_id", flat=True)) == ["GOOD"]
    assert "1 imported, 0 unchanged (already stored), 2 error(s)" in out.getvalue()
    errors = err.getvalue()
    assert (
        "bomb.png: 13000 x 13000 pixels at 8 bits would decode to 169,000,000 bytes, "
        "over the limit of 134,217,728 bytes (IMAGE_MAX_DECODED_MB); refused before decoding"
    ) in errors
    assert (
        "bomb.dcm: 12000 x 12000 pixels at 16 bits would decode to 288,000,000 bytes, "
        "over the limit of 134,217,728 bytes"
    ) in errors
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 2 == 2 * Image.objects.count()  # the good case's original and display


def test_the_limit_is_the_setting(study, tmp_path, settings):
    # MR_small is 64 x 64 at 16 bits: 8192 bytes decoded.
    rows = [{"case_id": "MR", "site": "north", "images": "mr.dcm"}]
    folder = write_import_dir(
        tmp_path / "in", rows, {"mr.dcm": pydicom_file("MR_small.dcm").read_bytes()}
    )
    settings.IMAGE_MAX_DECODED_BYTES = 8191
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=err)
    assert "mr.dcm: 64 x 64 pixels at 16 bits would decode to 8,192 bytes" in err.getvalue()
    assert not Case.objects.exists()

    settings.IMAGE_MAX_DECODED_BYTES = 8192
    call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=StringIO())
    assert Case.objects.filter(case_id="MR").exists()


@pytest.mark.parametrize("name", ["bomb.png", "bomb.dcm"])
def test_the_arrival_api_refuses_a_bomb_naming_the_file_and_stores_nothing(
    client, study, bombs, name
):
    token = issue_site_token(study=study, site=Site.objects.get(code="north"), name="PACS router")
    upload = SimpleUploadedFile(name, bombs[name], content_type="application/octet-stream")
    response = client.post(
        f"/api/studies/{study.slug}/cases/",
        {"metadata": json.dumps({"case_id": "P-001", "modality": "DX"}), "images": [upload]},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

    assert response.status_code == 400, response.content
    [problem] = response.json()["problems"]
    assert problem["where"] == name
    assert "would decode to" in problem["reason"] and "134,217,728 bytes" in problem["reason"]
    assert not Case.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_the_arrival_api_refuses_a_bomb_without_a_token(client, study, bombs):
    upload = SimpleUploadedFile("bomb.dcm", bombs["bomb.dcm"])
    response = client.post(
        f"/api/studies/{study.slug}/cases/",
        {"metadata": json.dumps({"case_id": "P-001"}), "images": [upload]},
    )
    assert response.status_code in (401, 403)
    assert not Case.objects.exists()


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((height, width), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_jpeg_whose_frame_header_claims_a_huge_size_is_refused_before_decoding():
    data = bytearray(_jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60_000).to_bytes(2, "big") * 2

    assert bitmap_decoded_size(bytes(data)) == DecodedSize(rows=60_000, columns=60_000)
    with pytest.raises(ImageTooLargeError, match=r"^x\.jpg: 60000 x 60000 pixels at 8 bits"):
        read_png(io.BytesIO(bytes(data)), name="x.jpg")


def test_an_image_within_the_limit_decodes_exactly_at_the_limit():
    assert read_png(io.BytesIO(_jpeg(16, 8)), max_decoded_bytes=128).shape == (8, 16)
    with pytest.raises(ImageTooLargeError, match="128 bytes, over the limit of 127 bytes"):
        read_png(io.BytesIO(_jpeg(16, 8)), max_decoded_bytes=127)


def test_a_multi_frame_header_counts_every_frame(tmp_path):
    ds = pydicom.dcmread(pydicom_file("emri_small.dcm"))  # 10 frames of 64 x 64, 16 bits
    path = tmp_path / "multi.dcm"
    ds.save_as(path)

    assert read_dicom_pixels(path, max_decoded_bytes=10 * 64 * 64 * 2).pixels.shape == (64, 64)
    with pytest.raises(ImageTooLargeError, match=r"64 x 64 pixels x 10 frames at 16 bits"):
        read_dicom_pixels(path, max_decoded_bytes=10 * 64 * 64 * 2 - 1)


def test_a_header_without_rows_is_refused_not_guessed(tmp_path):
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    del ds.Rows
    path = tmp_path / "norows.dcm"
    ds.save_as(path)
    with pytest.raises(ValueError, match="no usable Rows"):
        read_dicom_pixels(path)


def test_at_start_up_pillow_is_made_to_refuse_a_bomb_anywhere_in_the_process():
    # The viewer's endpoints open stored PNGs with Pillow directly: its own limit is the net.
    # pytest resets warning filters per test, so start-up is run again inside this one.
    apps.get_app_config("studies").ready()

    assert PILImage.MAX_IMAGE_PIXELS == settings.IMAGE_MAX_DECODED_BYTES
    # 12000 x 12000 = 144 M pixels: over the limit, yet under twice it, where Pillow by itself
    # would only warn.
    with pytest.raises(PILImage.DecompressionBombWarning):
        PILImage.open(io.BytesIO(png_bomb(12_000)))


@pytest.mark.parametrize(
    "source", ["RG1_J2KR.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_a_compressed_frame_larger_than_its_header_is_refused_before_decoding(
    study, tmp_path, source
):
    # JPEG decoders size their output from the codestream: a small Rows x Columns over a
    # large codestream would otherwise pass the header check.
    ds = pydicom.dcmread(pydicom_file(source))
    ds.Rows = ds.Columns = 8
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    rows = [{"case_id": "LIAR", "site": "north", "images": "liar.dcm", "modality": "DX"}]
    folder = write_import_dir(tmp_path / "in", rows, {"liar.dcm": buffer.getvalue()})

    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_cases", study.slug, str(folder), stdout=StringIO(), stderr=err)

    assert "liar.dcm: compressed frame 1 declares" in err.getvalue()
    assert "more than the header's 8 x 8; refused before decoding" in err.getvalue()
    assert not Case.objects.exists()
