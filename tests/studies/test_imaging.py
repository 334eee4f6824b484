"""Image files: DICOM and PNG round trips, display conventions, and clear errors."""

import hashlib
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)

from studyplatform.studies.imaging import (
    ImageError,
    file_sha256,
    read_dicom_pixels,
    read_png,
    to_display_png16,
    write_dicom,
    write_png16,
)


@pytest.fixture
def pixels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4096, size=(40, 56), dtype=np.uint16)


def _write(path, pixels, **kwargs):
    arguments = {
        "patient_id": "DEMO-001",
        "modality": "CR",
        "manufacturer": "Phantom Imaging",
        "model_name": "PX-1",
        "window_center": 2048,
        "window_width": 3000.5,
    } | kwargs
    return write_dicom(path, pixels, **arguments)


def test_dicom_round_trip_keeps_pixels_and_headers(tmp_path, pixels):
    path = _write(tmp_path / "a.dcm", pixels)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == ComputedRadiographyImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.Rows, ds.Columns, ds.BitsStored, ds.HighBit) == (40, 56, 12, 11)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.PatientID == "DEMO-001"
    assert ds.StudyDate == ""  # no clock in the file
    assert np.array_equal(ds.pixel_array, pixels)
    with path.open("rb") as handle:
        assert handle.read(132)[128:] == b"DICM"

    image = read_dicom_pixels(path)
    assert image.pixels.dtype == np.uint16
    assert np.array_equal(image.pixels, pixels)
    assert (image.bits_stored, image.window_center, image.window_width) == (12, 2048.0, 3000.5)
    assert (image.modality, image.manufacturer, image.model_name) == (
        "CR",
        "Phantom Imaging",
        "PX-1",
    )
    assert image.photometric_interpretation == "MONOCHROME2"


def test_dx_uses_the_for_presentation_sop_class(tmp_path, pixels):
    ds = pydicom.dcmread(_write(tmp_path / "dx.dcm", pixels, modality="DX"))
    assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert ds.PresentationIntentType == "FOR PRESENTATION"


def test_same_inputs_give_the_same_bytes_and_uids(tmp_path, pixels):
    a = _write(tmp_path / "a.dcm", pixels)
    b = _write(tmp_path / "b.dcm", pixels)
    assert a.read_bytes() == b.read_bytes()
    c = pydicom.dcmread(_write(tmp_path / "c.dcm", pixels[::-1].copy()))
    d = pydicom.dcmread(_write(tmp_path / "d.dcm", pixels, patient_id="DEMO-002"))
    first = pydicom.dcmread(a)
    assert c.SOPInstanceUID != first.SOPInstanceUID  # other pixels, other instance
    assert c.StudyInstanceUID == first.StudyInstanceUID  # same patient, same study
    assert d.StudyInstanceUID != first.StudyInstanceUID


def test_explicit_uids_and_extra_attributes_are_written(tmp_path, pixels):
    path = _write(
        tmp_path / "a.dcm",
        pixels,
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        sop_uid="1.2.3.4.5",
        extra={"StudyDate": "20240102", "InstitutionName": "Site A"},
    )
    ds = pydicom.dcmread(path)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
        "1.2.3",
        "1.2.3.4",
        "1.2.3.4.5",
    )
    assert (ds.StudyDate, ds.InstitutionName) == ("20240102", "Site A")


def test_write_refuses_values_beyond_bits_stored(tmp_path):
    with pytest.raises(ValueError, match="12"):
        _write(tmp_path / "a.dcm", np.full((4, 4), 4096, dtype=np.uint16))
    with pytest.raises(ValueError, match="keyword"):
        _write(tmp_path / "b.dcm", np.zeros((4, 4), np.uint16), extra={"NotAKeyword": 1})


def test_monochrome1_is_inverted_with_its_window(tmp_path, pixels):
    path = _write(tmp_path / "a.dcm", pixels, window_center=1000, window_width=500)
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(path)
    image = read_dicom_pixels(path)
    assert np.array_equal(image.pixels, 4095 - pixels.astype(np.int32))
    assert image.window_center == 3095.0
    assert image.window_width == 500.0
    assert image.photometric_interpretation == "MONOCHROME1"


def test_rescale_is_applied_and_negative_values_kept(tmp_path, pixels):
    path = _write(tmp_path / "a.dcm", pixels)
    ds = pydicom.dcmread(path)
    ds.RescaleSlope = "2"
    ds.RescaleIntercept = "-1024"
    ds.WindowCenter = ["40", "300"]  # several presets: the first one counts
    ds.WindowWidth = ["400", "1500"]
    ds.save_as(path)
    image = read_dicom_pixels(path)
    assert image.pixels.dtype == np.int32
    assert np.array_equal(image.pixels, pixels.astype(np.int32) * 2 - 1024)
    assert (image.window_center, image.window_width) == (40.0, 400.0)


def test_missing_window_falls_back_to_percentiles(tmp_path, pixels):
    path = _write(tmp_path / "a.dcm", pixels)
    ds = pydicom.dcmread(path)
    del ds.WindowCenter
    del ds.WindowWidth
    ds.save_as(path)
    image = read_dicom_pixels(path)
    lo, hi = np.percentile(pixels, [1, 99])
    assert image.window_center == pytest.approx((lo + hi) / 2)
    assert image.window_width == pytest.approx(hi - lo)


def test_non_dicom_file_gives_image_error_naming_it(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match=r"notes\.dcm"):
        read_dicom_pixels(path)


def test_truncated_pixel_data_gives_image_error(tmp_path, pixels):
    path = _write(tmp_path / "cut.dcm", pixels)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ImageError, match=r"cut\.dcm"):
        read_dicom_pixels(path)


def test_dicom_without_pixels_gives_image_error(tmp_path, pixels):
    path = _write(tmp_path / "nopix.dcm", pixels)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageError, match=r"nopix\.dcm.*no pixel data"):
        read_dicom_pixels(path)


def test_png16_round_trip_is_exact(tmp_path):
    values = np.array([[0, 1, 4095], [32768, 65535, 12345]], dtype=np.uint16)
    path = write_png16(tmp_path / "a.png", values)
    assert np.array_equal(read_png(path), values)
    decoded = read_png(io.BytesIO(to_display_png16(values)))
    assert decoded.dtype == np.uint16
    assert np.array_equal(decoded, values)
    assert to_display_png16(values) == path.read_bytes()


def test_read_png_accepts_8_bit_and_colour(tmp_path):
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert np.array_equal(read_png(tmp_path / "g.png"), gray.astype(np.uint16))
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 1] = (255, 255, 255)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert read_png(tmp_path / "c.png").tolist() == [[0, 255]]


def test_png_refuses_values_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="16"):
        write_png16(tmp_path / "a.png", np.array([[-1, 2]]))


def test_unreadable_png_gives_image_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ImageError, match=r"broken\.png"):
        read_png(path)


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


@pytest.mark.parametrize(("name", "modality"), [("CT_small.dcm", "CT"), ("MR_small_RLE.dcm", "MR")])
def test_real_scanner_files_from_pydicom_are_read(name, modality):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    image = read_dicom_pixels(path)
    ds = pydicom.dcmread(path)
    assert image.modality == modality
    assert image.pixels.shape == (ds.Rows, ds.Columns)
    expected = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    assert np.array_equal(image.pixels, expected.astype(np.int64))
    assert image.window_width > 0
