"""Turning received files into what the study stores, and reading import manifests.

Everything here works on bytes in memory and imports no model: a received file is identified
(DICOM, PNG or JPEG by its content, never by its name), de-identified (:mod:`deid`), and turned
into the stored original plus the viewer's derivative. Raw received bytes are never written
anywhere; only the de-identified result leaves this module.

Problems are :class:`ValueError` subclasses whose message names the file and the reason, so that
the import can report every bad file and go on with the others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian

from studyplatform.studies import imaging, volumes
from studyplatform.studies.deid import DeidentificationError, deidentify
from studyplatform.studies.imaging import ImageError
from studyplatform.studies.volumes import SliceHeader

MODALITIES: Final = ("CR", "DX", "CT", "MR", "MG")
CASE_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MANIFEST_NAME: Final = "manifest.csv"
REQUIRED_COLUMNS: Final = ("case_id", "site", "images")
OPTIONAL_COLUMNS: Final = ("modality",)
TRUTH_PREFIX: Final = "truth_"

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE: Final = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Upload:
    """One received file: the name it came with (for messages only) and its bytes."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Problem:
    """A bad file or row: where (file name or manifest line) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class PreparedImage:
    """A de-identified image ready to store; holds nothing identifying."""

    original: bytes
    original_suffix: str
    display: bytes
    rows: int
    columns: int
    bits_stored: int
    window_center: float
    window_width: float
    display_offset: int
    modality: str
    manufacturer: str
    model_name: str
    source_sha256: str
    source_format: str
    transfer_syntax: str
    burned_in_annotation: str
    #: The slice's series and place in it (DICOM only; de-identified UIDs).
    slice: SliceHeader | None = None


def check_case_id(case_id: str) -> str | None:
    """The reason ``case_id`` is not acceptable, or None."""
    if not CASE_ID_PATTERN.match(case_id):
        return (
            f"case_id {case_id!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return None


def _default_window(pixels: imaging.IntArray) -> tuple[float, float]:
    low, high = np.percentile(pixels, [1.0, 99.0])
    return float((low + high) / 2.0), float(max(high - low, 1.0))


def _display(pixels: imaging.IntArray, name: str) -> tuple[imaging.IntArray, int]:
    """Unsigned 16-bit values for the derivative and the offset added to get them."""
    if pixels.dtype == np.uint16:
        return pixels, 0  # already what the derivative holds: no copy
    low, high = int(pixels.min()), int(pixels.max())
    offset = -low if low < 0 else 0
    if high + offset > np.iinfo(np.uint16).max:
        raise ImageError(f"{name}: value range {low}..{high} does not fit a 16-bit derivative")
    return (pixels.astype(np.int64) + offset).astype(np.uint16), offset


@dataclass(frozen=True)
class _Deidentified:
    original: bytes  # the de-identified file as it will be stored
    syntax: str
    burned_in: str
    headers: list[SliceHeader]


def _deidentified_dicom(
    upload: Upload, *, pseudonym: str, salt: str, max_decoded_bytes: int
) -> _Deidentified:
    try:
        ds = dcmread(io.BytesIO(upload.data))
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"{upload.name}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise ImageError(f"{upload.name}: DICOM file has no pixel data (not an image)")
    # The pixel data is still encoded here (pydicom decodes only on request): refuse a bomb
    # before de-identifying, writing or decoding anything.
    size = imaging.dicom_decoded_size(ds, name=upload.name)
    imaging.check_decoded_size(size, name=upload.name, max_bytes=max_decoded_bytes)
    imaging.check_dicom_frames(ds, size, name=upload.name)
    if "TransferSyntaxUID" not in ds.file_meta:
        # A file without meta information is implicit VR little endian (PS3.5 A.1).
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    syntax = str(ds.file_meta.TransferSyntaxUID)
    result = deidentify(ds, pseudonym=pseudonym, salt=salt)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except (ValueError, AttributeError, TypeError) as exc:
        raise ImageError(f"{upload.name}: cannot write the de-identified file ({exc})") from exc
    # Read from the de-identified header: the UIDs are the replacements, never the originals.
    return _Deidentified(
        buffer.getvalue(), syntax, result.burned_in_annotation[:3], volumes.slice_headers(ds)
    )


def _from_dicom_image(
    upload: Upload, found: _Deidentified, image: imaging.DicomImage, header: SliceHeader
) -> PreparedImage:
    pixels, offset = _display(image.pixels, upload.name)
    bits = max(1, min(16, max(image.bits_stored, int(pixels.max()).bit_length())))
    return PreparedImage(
        original=found.original,
        original_suffix=".dcm",
        display=imaging.to_display_png16(pixels),
        rows=int(pixels.shape[0]),
        columns=int(pixels.shape[1]),
        bits_stored=bits,
        window_center=image.window_center + offset,
        window_width=max(image.window_width, 1.0),
        display_offset=offset,
        modality=image.modality.strip().upper(),
        manufacturer=image.manufacturer.strip()[:100],
        model_name=image.model_name.strip()[:100],
        source_sha256=upload.sha256,
        source_format="dicom",
        transfer_syntax=found.syntax,
        burned_in_annotation=found.burned_in,
        slice=header,
    )


def _prepare_dicom(
    upload: Upload, *, pseudonym: str, salt: str, max_decoded_bytes: int
) -> PreparedImage:
    found = _deidentified_dicom(
        upload, pseudonym=pseudonym, salt=salt, max_decoded_bytes=max_decoded_bytes
    )
    # Decode what will be stored, not what was received: the stored file is proven usable.
    image = imaging.read_dicom_pixels(
        io.BytesIO(found.original), name=upload.name, max_decoded_bytes=max_decoded_bytes
    )
    # Of a multi-frame image, read_dicom_pixels decodes the middle frame.
    header = found.headers[len(found.headers) // 2 if len(found.headers) > 1 else 0]
    return _from_dicom_image(upload, found, image, header)


def _prepare_frames(
    upload: Upload, *, pseudonym: str, salt: str, max_decoded_bytes: int
) -> list[PreparedImage]:
    """Every frame of a multi-frame DICOM object as a slice; all share the one stored file."""
    found = _deidentified_dicom(
        upload, pseudonym=pseudonym, salt=salt, max_decoded_bytes=max_decoded_bytes
    )
    if len(found.headers) == 1:
        image = imaging.read_dicom_pixels(
            io.BytesIO(found.original), name=upload.name, max_decoded_bytes=max_decoded_bytes
        )
        return [_from_dicom_image(upload, found, image, found.headers[0])]
    frames = volumes.iter_frames(
        found.original, name=upload.name, max_decoded_bytes=max_decoded_bytes
    )
    prepared = [
        _from_dicom_image(upload, found, image, header)
        for image, header in zip(frames, found.headers, strict=False)
    ]
    if len(prepared) != len(found.headers):
        raise ImageError(
            f"{upload.name}: {len(prepared)} frames decoded, the header says {len(found.headers)}"
        )
    return prepared


def _prepare_bitmap(upload: Upload, *, source_format: str, max_decoded_bytes: int) -> PreparedImage:
    pixels = imaging.read_png(
        io.BytesIO(upload.data), name=upload.name, max_decoded_bytes=max_decoded_bytes
    )
    if pixels.ndim != 2 or pixels.size == 0:
        raise ImageError(f"{upload.name}: expected a 2-D image, got shape {pixels.shape}")
    # The stored original is a fresh PNG of the pixel values alone: text chunks and EXIF (where
    # names, dates and devices hide) are dropped with everything else but the pixels.
    png = imaging.to_display_png16(pixels)
    center, width = _default_window(pixels)
    return PreparedImage(
        original=png,
        original_suffix=".png",
        display=png,
        rows=int(pixels.shape[0]),
        columns=int(pixels.shape[1]),
        bits_stored=8 if int(pixels.max()) < 256 else 16,
        window_center=center,
        window_width=width,
        display_offset=0,
        modality="",
        manufacturer="",
        model_name="",
        source_sha256=upload.sha256,
        source_format=source_format,
        transfer_syntax="",
        burned_in_annotation="",
    )


def _refuse_by_name(upload: Upload, exc: Exception) -> ImageError | DeidentificationError:
    if isinstance(exc, DeidentificationError):
        return DeidentificationError(f"{upload.name}: {exc}")
    # A malformed file can fail anywhere inside the decoders (pydicom reads elements lazily,
    # Pillow refuses decompression bombs): whatever the parser raises, the file is refused by
    # name and the import goes on with the others.
    return ImageError(f"{upload.name}: not a readable image ({type(exc).__name__}: {exc})")


def _kind(upload: Upload) -> str:
    if not upload.data:
        raise ImageError(f"{upload.name}: empty file")
    head = upload.data[:8]
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(_JPEG_SIGNATURE):
        return "jpeg"
    if upload.data[128:132] != b"DICM" and not _looks_like_headerless_dicom(upload.data):
        raise ImageError(f"{upload.name}: not a DICOM, PNG or JPEG file")
    return "dicom"


def prepare_image(
    upload: Upload,
    *,
    pseudonym: str,
    salt: str,
    max_decoded_bytes: int = imaging.DEFAULT_MAX_DECODED_BYTES,
) -> PreparedImage:
    """De-identify one received file and derive the viewer's image.

    Of a multi-frame DICOM object, the middle frame (see :func:`prepare_slices` for all).
    Raises :class:`ImageError` (unreadable, not an image, undecodable pixel data, or a header
    promising more than ``max_decoded_bytes`` of decoded pixels: :class:`ImageTooLargeError`,
    raised before anything is decoded) or :class:`DeidentificationError`; both name the file.
    """
    kind = _kind(upload)
    try:
        if kind == "dicom":
            return _prepare_dicom(
                upload, pseudonym=pseudonym, salt=salt, max_decoded_bytes=max_decoded_bytes
            )
        return _prepare_bitmap(upload, source_format=kind, max_decoded_bytes=max_decoded_bytes)
    except ImageError:
        raise
    except Exception as exc:
        raise _refuse_by_name(upload, exc) from exc


def prepare_slices(
    upload: Upload,
    *,
    pseudonym: str,
    salt: str,
    max_decoded_bytes: int = imaging.DEFAULT_MAX_DECODED_BYTES,
) -> list[PreparedImage]:
    """As :func:`prepare_image`, but every frame of a multi-frame DICOM object, in frame order.

    The frames share one stored original (``original`` is the same bytes object); each has
    its own derivative and :class:`~studyplatform.studies.volumes.SliceHeader`.
    """
    kind = _kind(upload)
    if kind != "dicom":
        return [
            prepare_image(
                upload, pseudonym=pseudonym, salt=salt, max_decoded_bytes=max_decoded_bytes
            )
        ]
    try:
        return _prepare_frames(
            upload, pseudonym=pseudonym, salt=salt, max_decoded_bytes=max_decoded_bytes
        )
    except ImageError:
        raise
    except Exception as exc:
        raise _refuse_by_name(upload, exc) from exc


def _looks_like_headerless_dicom(data: bytes) -> bool:
    # Old files without preamble start with a group 0x0008 element (little endian).
    return len(data) > 8 and data[:2] == b"\x08\x00"


# --- Manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestRow:
    line: int
    case_id: str
    site: str
    images: tuple[str, ...]
    truth: Mapping[str, bool] = field(default_factory=dict)
    modality: str | None = None


def _check_image_name(name: str) -> str | None:
    path = Path(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        return f"image name {name!r} must be a relative path inside the import folder"
    return None


def _parse_row(
    line: int, record: Mapping[str, str | None], truth_columns: Mapping[str, str]
) -> tuple[ManifestRow | None, list[Problem]]:
    where = f"{MANIFEST_NAME} line {line}"
    problems: list[Problem] = []

    def value(column: str) -> str:
        return (record.get(column) or "").strip()

    case_id = value("case_id")
    if reason := check_case_id(case_id):
        problems.append(Problem(where, reason))
    site = value("site")
    if not site:
        problems.append(Problem(where, "site is empty"))
    images = tuple(name.strip() for name in value("images").split(";") if name.strip())
    if not images:
        problems.append(Problem(where, "images is empty"))
    for name in images:
        if reason := _check_image_name(name):
            problems.append(Problem(where, reason))
    if len(set(images)) != len(images):
        problems.append(Problem(where, "the same image is listed twice"))
    modality = value("modality").upper() or None
    if modality is not None and modality not in MODALITIES:
        problems.append(Problem(where, f"modality {modality!r} is not one of {MODALITIES}"))
    truth: dict[str, bool] = {}
    for column, code in truth_columns.items():
        raw = value(column)
        if raw in ("0", "1"):
            truth[code] = raw == "1"
        elif raw:
            problems.append(Problem(where, f"{column} must be 0, 1 or empty, not {raw!r}"))
    if problems:
        return None, problems
    return ManifestRow(line, case_id, site, images, truth, modality), []


def csv_problem(text: str, where: str) -> Problem | None:
    """Why ``text`` cannot be read as CSV at all (a field over the csv module's size limit, say).

    Such a file is refused whole: past the broken line, rows cannot be told apart reliably.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for _ in reader:
            pass
    except csv.Error as exc:
        return Problem(f"{where} line {reader.line_num}", f"is not valid CSV ({exc})")
    return None


def read_manifest(
    path: Path, *, finding_codes: Collection[str]
) -> tuple[list[ManifestRow], list[Problem]]:
    """Parse ``manifest.csv``; rows with problems are left out and reported.

    A header that lacks a required column or names an unknown column refuses the whole file.
    """
    where = MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [], [Problem(where, f"not found in {path.parent}")]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(where, f"cannot be read as UTF-8 text ({exc})")]
    if problem := csv_problem(text, where):
        return [], [problem]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [column.strip() for column in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        return [], [Problem(where, f"missing column(s): {', '.join(missing)}")]
    truth_columns = {c: c[len(TRUTH_PREFIX) :] for c in header if c.startswith(TRUTH_PREFIX)}
    unknown_findings = sorted(c for c, code in truth_columns.items() if code not in finding_codes)
    unknown = [
        c
        for c in header
        if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS and c not in truth_columns
    ]
    if unknown_findings or unknown:
        reasons = []
        if unknown_findings:
            reasons.append(
                f"unknown finding column(s) {', '.join(unknown_findings)} "
                f"(the study's findings: {', '.join(sorted(finding_codes)) or 'none'})"
            )
        if unknown:
            reasons.append(f"unknown column(s) {', '.join(unknown)}")
        return [], [Problem(where, "; ".join(reasons))]

    rows: list[ManifestRow] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record:
            problems.append(Problem(f"{where} line {line}", "more fields than columns"))
            continue
        if not any((v or "").strip() for v in record.values()):
            continue  # blank line
        row, row_problems = _parse_row(line, record, truth_columns)
        problems.extend(row_problems)
        if row is None:
            continue
        if row.case_id in first_line:
            problems.append(
                Problem(
                    f"{where} line {line}",
                    f"case_id {row.case_id!r} is already on line {first_line[row.case_id]}",
                )
            )
            continue
        first_line[row.case_id] = line
        rows.append(row)
    return rows, problems
