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
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageMode, UnidentifiedImageError
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import pixel_array
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

#: The default of the IMAGE_MAX_DECODED_MB setting (see studyplatform/settings.py for why).
DEFAULT_MAX_DECODED_BYTES: Final = 128 * 1024 * 1024

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> samples per pixel once decoded (a palette expands to RGB on conversion).
_PNG_SAMPLES: Final[Mapping[int, int]] = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC share the range but are not frames),
# and JPEG-LS's SOF55 (F7), whose frame header has the same layout.
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""


class ImageTooLargeError(ImageError):
    """A file whose header promises more decoded pixel data than the configured limit."""


@dataclass(frozen=True)
class DecodedSize:
    """What a file's header says decoding it would produce (before anything is decoded)."""

    rows: int
    columns: int
    frames: int = 1
    samples: int = 1
    bytes_per_sample: int = 1

    @property
    def nbytes(self) -> int:
        return self.frames * self.rows * self.columns * self.samples * self.bytes_per_sample

    def describe(self) -> str:
        frames = f" x {self.frames} frames" if self.frames != 1 else ""
        samples = f", {self.samples} samples" if self.samples != 1 else ""
        return (
            f"{self.columns} x {self.rows} pixels{frames}{samples} "
            f"at {8 * self.bytes_per_sample} bits"
        )


def check_decoded_size(size: DecodedSize, *, name: str, max_bytes: int) -> None:
    """Raise :class:`ImageTooLargeError` if decoding would produce more than ``max_bytes``.

    Called on the header alone: a decompression bomb (a small file that decodes to gigabytes)
    is refused before a single pixel is decoded.
    """
    if size.nbytes > max_bytes:
        raise ImageTooLargeError(
            f"{name}: {size.describe()} would decode to {size.nbytes:,} bytes, over the limit "
            f"of {max_bytes:,} bytes (IMAGE_MAX_DECODED_MB); refused before decoding"
        )


def limit_pillow(max_bytes: int) -> None:
    """Make Pillow refuse, in every module of the process, what the byte limit would refuse.

    Pillow counts pixels, not bytes; a decoded pixel takes at least one byte, so an image over
    ``max_bytes`` pixels is over the byte limit whatever its mode. Pillow only warns between
    one and two times its limit; the warning is made an error so that nothing over it decodes.
    """
    Image.MAX_IMAGE_PIXELS = max_bytes
    warnings.simplefilter("error", Image.DecompressionBombWarning)


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


def _header_int(ds: Any, keyword: str, default: int | None, name: str) -> int:
    value = ds.get(keyword, default)
    if value in ("", None):
        value = default
    try:
        number = int(value) if value is not None else -1
    except (TypeError, ValueError):
        number = -1
    if number < (0 if keyword == "NumberOfFrames" else 1):
        raise ImageError(f"{name}: DICOM header has no usable {keyword} ({value!r})")
    return number


def dicom_decoded_size(ds: Any, *, name: str) -> DecodedSize:
    """Frames, rows, columns, samples and bytes per sample from a DICOM header.

    Only header elements are read (never PixelData), so this is safe on any received file.
    """
    bits = _header_int(ds, "BitsAllocated", None, name)
    return DecodedSize(
        rows=_header_int(ds, "Rows", None, name),
        columns=_header_int(ds, "Columns", None, name),
        frames=max(1, _header_int(ds, "NumberOfFrames", 1, name)),
        samples=_header_int(ds, "SamplesPerPixel", 1, name),
        # 1-bit data is unpacked to a byte per pixel when decoded.
        bytes_per_sample=max(1, (bits + 7) // 8),
    )


def _rescaled(
    raw: npt.NDArray[Any], *, slope: float, intercept: float, flip: float | None
) -> IntArray:
    """``flip - (raw * slope + intercept)`` (without ``flip``: the rescaled values), rounded,
    as uint16 when they fit and int32 otherwise.

    Integer rescales, by far the most common (slope 1), stay in integers: no float64 copy of
    the image, which would take four times the memory of 16-bit pixels.
    """
    pixels: IntArray
    if np.issubdtype(raw.dtype, np.integer) and slope == 1 and intercept.is_integer():
        if raw.dtype == np.uint16 and intercept == 0 and flip is None:
            return raw
        wide = np.int64 if raw.dtype.itemsize > 2 else np.int32
        ints: npt.NDArray[np.signedinteger[Any]] = raw.astype(wide)
        np.add(ints, int(intercept), out=ints)
        if flip is not None:
            np.subtract(int(flip), ints, out=ints)
        values: npt.NDArray[Any] = ints
    else:
        values = raw.astype(np.float64) * slope + intercept
        if flip is not None:
            values = flip - values
        values = np.rint(values)
    if values.min() >= 0 and values.max() <= np.iinfo(np.uint16).max:
        pixels = values.astype(np.uint16)
    else:
        pixels = values.astype(np.int32)
    return pixels


def _codestream_pixels(frame: bytes) -> int | None:
    """Rows x columns an encapsulated frame's own header declares (JPEG, JPEG-LS, JPEG 2000);
    None when it is none of these (RLE: the decoder sizes its output from the data set)."""
    if frame.startswith(b"\xff\xd8"):
        size = bitmap_decoded_size(frame)
        return None if size is None else size.rows * size.columns
    at = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # JPEG 2000 SOC + SIZ (maybe in a JP2 box)
    if at < 0 or at + 24 > len(frame):
        return None
    xsiz, ysiz, xosiz, yosiz = (int(v) for v in struct.unpack(">IIII", frame[at + 8 : at + 24]))
    return max(0, xsiz - xosiz) * max(0, ysiz - yosiz)


def check_dicom_frames(ds: Any, size: DecodedSize, *, name: str) -> None:
    """Refuse compressed frames that declare more pixels than the data set's header.

    JPEG and JPEG 2000 decoders size their output from the codestream, not from Rows and
    Columns: a small header over a huge codestream would pass :func:`check_decoded_size` and
    still decode to gigabytes.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not UID(syntax).is_compressed or "PixelData" not in ds:
        return
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=size.frames)
        for number, frame in enumerate(frames, start=1):
            pixels = _codestream_pixels(frame)
            if pixels is not None and pixels > size.rows * size.columns:
                raise ImageTooLargeError(
                    f"{name}: compressed frame {number} declares {pixels:,} pixels, more than "
                    f"the header's {size.columns} x {size.rows}; refused before decoding"
                )
    except (ValueError, struct.error) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: malformed encapsulated pixel data ({exc})") from exc


def read_dicom_pixels(
    path: StrPath | BinaryIO,
    *,
    name: str | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> DicomImage:
    """Read a DICOM image as display-ready integers; :class:`ImageError` if it is not usable.

    The header is checked against ``max_decoded_bytes`` before any pixel is decoded
    (:class:`ImageTooLargeError`). Of a multi-frame image only the representative frame is
    decoded.
    """
    name = name or str(path)
    try:
        ds = dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"{name}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise ImageError(f"{name}: DICOM file has no pixel data")
    size = dicom_decoded_size(ds, name=name)
    check_decoded_size(size, name=name, max_bytes=max_decoded_bytes)
    check_dicom_frames(ds, size, name=name)
    samples = size.samples
    if samples not in (1, 3):
        raise ImageError(f"{name}: unsupported SamplesPerPixel {samples}")
    # Multi-frame: the middle frame is the representative one (the first for colour).
    index = None if size.frames == 1 else (size.frames // 2 if samples == 1 else 0)
    try:
        raw = pixel_array(ds, index=index)
    except Exception as exc:  # decoders raise many types (missing plug-in, truncated data, ...)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ImageError(f"{name}: cannot decode pixel data ({syntax}): {exc}") from exc
    del ds.PixelData  # the encoded bytes are no longer needed; free them before converting
    return dicom_image(ds, raw, name=name)


def dicom_image(ds: Any, raw: npt.NDArray[Any], *, name: str) -> DicomImage:
    """One decoded frame ``raw`` of ``ds`` as display-ready integers (MONOCHROME2, rescaled),
    with the window from the header (or the 1st-99th percentile when it has none)."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if samples == 3 and raw.ndim == 3:
        # Colour (secondary capture, screenshots): ITU-R 601 luminance.
        raw = np.rint(raw[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    if raw.ndim != 2:
        raise ImageError(f"{name}: expected a 2-D image, got shape {raw.shape}")

    bits_stored = int(ds.get("BitsStored", 8 * raw.dtype.itemsize))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if photometric == "MONOCHROME1":
        # Invert within the stored range so that bright means dense, as in MONOCHROME2.
        if int(ds.get("PixelRepresentation", 0)) == 1:
            stored_lo, stored_hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        else:
            stored_lo, stored_hi = 0, (1 << bits_stored) - 1
        flip: float | None = (stored_lo + stored_hi) * slope + 2 * intercept
    else:
        flip = None
    pixels = _rescaled(raw, slope=slope, intercept=intercept, flip=flip)

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


def bitmap_decoded_size(data: bytes) -> DecodedSize | None:
    """Rows, columns, samples and sample size from a PNG's IHDR or a JPEG's start of frame.

    None when ``data`` is neither or the header is cut short (Pillow then reports the file).
    """
    if data.startswith(_PNG_SIGNATURE):
        if len(data) < 26 or data[12:16] != b"IHDR":
            return None
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        return DecodedSize(
            rows=height,
            columns=width,
            samples=_PNG_SAMPLES.get(colour, 4),
            bytes_per_sample=2 if depth == 16 else 1,
        )
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _JPEG_SOF:
            if at + 10 > len(data):
                return None
            precision, height, width, components = struct.unpack(">BHHB", data[at + 4 : at + 10])
            if height == 0:  # the height comes later (DNL): let Pillow's own limit decide
                return None
            return DecodedSize(
                rows=height,
                columns=width,
                samples=components,
                bytes_per_sample=2 if precision > 8 else 1,
            )
        at += 2 + length
    return None


def _pillow_size(image: Image.Image) -> DecodedSize:
    mode = ImageMode.getmode(image.mode)
    itemsize = int(mode.typestr[-1]) if mode.typestr[-1].isdigit() else 1
    width, height = image.size
    return DecodedSize(
        rows=height, columns=width, samples=len(mode.bands), bytes_per_sample=itemsize
    )


def read_png(
    path: StrPath | BinaryIO,
    *,
    name: str | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> npt.NDArray[np.uint16]:
    """Read a PNG (or another Pillow format) as uint16 gray values, unscaled.

    8-bit gray keeps its 0..255 values; colour is reduced to ITU-R 601 luminance. The size in
    the header is checked against ``max_decoded_bytes`` before any pixel is decoded
    (:class:`ImageTooLargeError`).
    """
    name = name or str(path)
    try:
        data = path.read() if hasattr(path, "read") else Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc})") from exc
    if (size := bitmap_decoded_size(data)) is not None:
        check_decoded_size(size, name=name, max_bytes=max_decoded_bytes)
    try:
        # Image.open reads the header only; pixels are decoded by load().
        with Image.open(io.BytesIO(data)) as image:
            check_decoded_size(_pillow_size(image), name=name, max_bytes=max_decoded_bytes)
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Only for formats whose header is not read above: Pillow's own limit (limit_pillow).
        raise ImageTooLargeError(
            f"{name}: {exc} (limit {max_decoded_bytes:,} bytes, IMAGE_MAX_DECODED_MB); "
            "refused before decoding"
        ) from exc
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
