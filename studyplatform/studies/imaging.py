"""Image files: writing and reading DICOM and PNG, and the viewer's derivative.

Cases arrive as DICOM (or PNG/JPEG) from many scanners; everything downstream (the viewer, the
model, the tests) wants one thing: a 2-D integer array in display orientation (MONOCHROME2,
rescale applied) plus the few header fields the study records. This module is that boundary, with
no Django import, so that commands, tasks and tests can share it.

Written files are byte-for-byte reproducible: UIDs are derived from the inputs (never random) and
no date or time is written unless the caller passes one, so the demo can be rebuilt identically.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

StrPath = str | PathLike[str]
IntArray = npt.NDArray[np.integer[Any]]

SOP_CLASSES: Final[Mapping[str, UID]] = {
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
}
_CHUNK: Final = 1 << 20


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""


@dataclass(frozen=True)
class DicomImage:
    """Pixels ready for display (MONOCHROME2, rescale applied) and the headers the study keeps.

    ``pixels`` is uint16 when the rescaled values fit, int32 otherwise (e.g. CT in Hounsfield
    units). The window is in the same units as ``pixels``.
    """

    pixels: IntArray
    bits_stored: int
    window_center: float
    window_width: float
    photometric_interpretation: str  # as stored; MONOCHROME1 pixels have been inverted
    modality: str
    manufacturer: str
    model_name: str


def _ds(value: float) -> str:
    # DS is limited to 16 characters; pydicom's formatter picks the best representation.
    return format_number_as_ds(float(value))


def write_dicom(
    path: StrPath,
    pixels: IntArray,
    *,
    patient_id: str,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str,
    manufacturer: str,
    model_name: str,
    window_center: float,
    window_width: float,
    bits_stored: int = 12,
    extra: Mapping[str, Any] | None = None,
    uid_prefix: str | None = None,
) -> Path:
    """Write a single-frame radiograph as a DICOM Part 10 file (explicit VR little endian).

    Missing UIDs are derived from the inputs: the study from the patient, the series from the
    study and modality, the instance from the series and the pixel data, so rebuilding the demo
    gives the same files and two different images never share an instance UID. ``extra`` sets
    further attributes by DICOM keyword (e.g. ``{"StudyDate": "20240101"}``).
    """
    if modality not in SOP_CLASSES:
        raise ValueError(f"modality must be one of {sorted(SOP_CLASSES)}, not {modality!r}")
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D array, not shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"pixels must be integers, not {arr.dtype}")
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be 1..16, not {bits_stored}")
    if arr.min() < 0 or arr.max() >= 1 << bits_stored:
        raise ValueError(
            f"pixel values {arr.min()}..{arr.max()} do not fit in {bits_stored} unsigned bits"
        )
    data = arr.astype("<u2").tobytes()

    # pydicom ignores entropy_srcs when the prefix is None (it returns a random 2.25 UUID UID).
    prefix = uid_prefix or PYDICOM_ROOT_UID
    study = study_uid or generate_uid(prefix, entropy_srcs=["study", patient_id])
    series = series_uid or generate_uid(prefix, entropy_srcs=["series", study, modality])
    digest = hashlib.sha256(data).hexdigest()
    sop = sop_uid or generate_uid(prefix, entropy_srcs=["instance", series, digest])
    sop_class = SOP_CLASSES[modality]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    # Type 2 attributes: present, empty unless the caller supplies them through ``extra``.
    for keyword in (
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        setattr(ds, keyword, "")
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model_name
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.WindowCenter = _ds(window_center)
    ds.WindowWidth = _ds(window_width)
    if modality == "DX":
        # Required by the DX Image module for a For Presentation image.
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.RescaleType = "US"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.PresentationLUTShape = "IDENTITY"
        ds.BurnedInAnnotation = "NO"
        ds.ImagerPixelSpacing = ["0.143", "0.143"]
        ds.DetectorType = "DIRECT"
    for keyword, value in (extra or {}).items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"extra: {keyword!r} is not a DICOM keyword")
        setattr(ds, keyword, value)
    ds.PixelData = data
    ds["PixelData"].VR = "OW"

    out = Path(path)
    ds.save_as(out, enforce_file_format=True)
    return out


def _default_window(pixels: IntArray) -> tuple[float, float]:
    # The 1st-99th percentile range shows anatomy without being dominated by collimation or air.
    lo, hi = np.percentile(pixels, [1.0, 99.0])
    return float((lo + hi) / 2.0), float(max(hi - lo, 1.0))


def _first(value: Any) -> float:
    """First value of a possibly multi-valued DS (several windows may be stored)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return float(value)
    return float(next(iter(value)))


def read_dicom_pixels(path: StrPath | BinaryIO, *, name: str | None = None) -> DicomImage:
    """Read a DICOM image as display-ready integers; :class:`ImageError` if it is not usable."""
    name = name or str(path)
    try:
        ds = dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"{name}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise ImageError(f"{name}: DICOM file has no pixel data")
    try:
        raw = ds.pixel_array
    except Exception as exc:  # decoders raise many types (missing plug-in, truncated data, ...)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageError(f"{name}: cannot decode pixel data ({syntax}): {exc}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3 and raw.ndim >= 3:
        # Colour (secondary capture, screenshots): ITU-R 601 luminance.
        raw = raw[0] if raw.ndim == 4 else raw
        raw = np.rint(raw[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    elif samples != 1:
        raise ImageError(f"{name}: unsupported SamplesPerPixel {samples}")
    if raw.ndim == 3:
        raw = raw[raw.shape[0] // 2]  # multi-frame: the middle frame is the representative one
    if raw.ndim != 2:
        raise ImageError(f"{name}: expected a 2-D image, got shape {raw.shape}")

    bits_stored = int(ds.get("BitsStored", 8 * raw.dtype.itemsize))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = raw.astype(np.float64) * slope + intercept
    if photometric == "MONOCHROME1":
        # Invert within the stored range so that bright means dense, as in MONOCHROME2.
        if int(ds.get("PixelRepresentation", 0)) == 1:
            stored_lo, stored_hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        else:
            stored_lo, stored_hi = 0, (1 << bits_stored) - 1
        flip = (stored_lo + stored_hi) * slope + 2 * intercept
        values = flip - values
    else:
        flip = None
    values = np.rint(values)
    pixels: IntArray
    if values.min() >= 0 and values.max() <= np.iinfo(np.uint16).max:
        pixels = values.astype(np.uint16)
    else:
        pixels = values.astype(np.int32)

    if "WindowCenter" in ds and "WindowWidth" in ds and ds.WindowCenter not in ("", None):
        try:
            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except (TypeError, ValueError, StopIteration) as exc:
            raise ImageError(f"{name}: malformed window center/width ({exc})") from exc
        if flip is not None:
            center = flip - center
    else:
        center, width = _default_window(pixels)

    return DicomImage(
        pixels=pixels,
        bits_stored=bits_stored,
        window_center=center,
        window_width=width,
        photometric_interpretation=photometric,
        modality=str(ds.get("Modality", "")),
        manufacturer=str(ds.get("Manufacturer", "")),
        model_name=str(ds.get("ManufacturerModelName", "")),
    )


def _png16(pixels: IntArray) -> Image.Image:
    arr = np.asarray(pixels)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"pixels must be a 2-D integer array, not {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"pixel values {arr.min()}..{arr.max()} do not fit in 16 unsigned bits")
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint16))


def write_png16(path: StrPath, pixels: IntArray) -> Path:
    """Write a 16-bit grayscale PNG that reads back to exactly the same values."""
    out = Path(path)
    _png16(pixels).save(out, format="PNG")
    return out


def to_display_png16(pixels: IntArray) -> bytes:
    """The viewer's derivative: exact 16-bit values, so window/level in the browser is exact."""
    buffer = io.BytesIO()
    _png16(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(path: StrPath | BinaryIO, *, name: str | None = None) -> npt.NDArray[np.uint16]:
    """Read a PNG (or another Pillow format) as uint16 gray values, unscaled.

    8-bit gray keeps its 0..255 values; colour is reduced to ITU-R 601 luminance.
    """
    name = name or str(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                arr = np.asarray(image).astype(np.uint16)
            elif image.mode == "I":
                arr32 = np.asarray(image)
                if arr32.min() < 0 or arr32.max() > np.iinfo(np.uint16).max:
                    raise ImageError(f"{name}: 32-bit values outside 0..65535")
                arr = arr32.astype(np.uint16)
            elif image.mode == "L":
                arr = np.asarray(image).astype(np.uint16)
            else:
                arr = np.asarray(image.convert("L")).astype(np.uint16)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: not a readable image ({exc})") from exc
    return arr


def file_sha256(path: StrPath) -> str:
    """Hex SHA-256 of a file, read in chunks (model files and images can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
