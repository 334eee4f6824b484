"""Files for import tests: real DICOM files shipped by pydicom and pydicom-data, and the same
with identifying data planted in them, so that a test can search the stored result for it."""

from __future__ import annotations

import csv
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image as PILImage
from PIL import PngImagePlugin
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

# Planted identifying values: unusual enough that finding one anywhere means it leaked.
PHI_NAME = "Quixote^Alonso"
PHI_ID = "MRN7731XQ"
PHI_OTHER_ID = "SSN555019283"
PHI_BIRTH = "19480312"
PHI_INSTITUTION = "Rocinante General Hospital"
PHI_PHYSICIAN = "Panza^Sancho"
PHI_ACCESSION = "ACC20250917X"
PHI_TOKENS = (
    "Quixote",
    "Alonso",
    PHI_ID,
    PHI_OTHER_ID,
    PHI_BIRTH,
    "Rocinante",
    "Panza",
    "Sancho",
    PHI_ACCESSION,
)


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"{name} ships with pydicom or pydicom-data"
    return Path(path)


def with_phi(name: str) -> bytes:
    """A real pydicom file with identifying data everywhere the basic profile looks."""
    ds = pydicom.dcmread(pydicom_file(name))
    ds.PatientName = PHI_NAME
    ds.PatientID = PHI_ID
    ds.OtherPatientIDs = PHI_OTHER_ID
    ds.PatientBirthDate = PHI_BIRTH
    ds.InstitutionName = PHI_INSTITUTION
    ds.ReferringPhysicianName = PHI_PHYSICIAN
    ds.AccessionNumber = PHI_ACCESSION
    ds.StudyDate = "20250917"
    ds.ImageComments = f"Patient {PHI_NAME} {PHI_ID}"
    ds.StudyDescription = "Chest for Quixote"
    nested = Dataset()
    nested.PatientName = PHI_NAME
    nested.PatientID = PHI_ID
    ds.ReferencedPatientSequence = [nested]
    request = Dataset()
    request.RequestingPhysician = PHI_PHYSICIAN
    request.AccessionNumber = PHI_ACCESSION
    ds.RequestAttributesSequence = [request]
    block = ds.private_block(0x0011, "HOSPITAL PACS", create=True)
    block.add_new(0x01, "LO", f"{PHI_NAME} {PHI_ID}")
    ds.preamble = b"Quixote".ljust(128, b"\0")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_with_phi(pixels: np.ndarray | None = None) -> bytes:
    arr = pixels if pixels is not None else np.arange(64 * 48, dtype=np.uint8).reshape(64, 48)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"{PHI_NAME} {PHI_ID} born {PHI_BIRTH}")
    buffer = io.BytesIO()
    PILImage.fromarray(arr).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg_with_phi() -> bytes:
    arr = (np.indices((40, 40)).sum(axis=0) * 3).astype(np.uint8)
    image = PILImage.fromarray(arr)
    exif = image.getexif()
    exif[0x010E] = f"{PHI_NAME} {PHI_ID}"  # ImageDescription
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = 13_000) -> bytes:
    """A valid 8-bit gray PNG of ``side`` x ``side`` black pixels (13000: ~160 KB on disk, 169 MB
    decoded), compressed row by row so that building it never holds the decoded image."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 and a row of zeros
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def rle_bomb_dicom(side: int = 12_000) -> bytes:
    """A valid RLE Lossless 16-bit DICOM of ``side`` x ``side`` zeros (12000: 4.5 MB on disk,
    288 MB decoded; 30000: 28 MB on disk, 1.8 GB decoded), its segments built by hand from
    replicate runs of 128 bytes (PS3.5 G.3.1)."""
    plane = side * side
    full, rest = divmod(plane, 128)
    # Two segments (high and low byte of each 16-bit sample), each all runs of zero.
    segment = b"\x81\x00" * full + (bytes([257 - rest, 0]) if rest else b"")
    segment += b"\x00" * (len(segment) % 2)
    header = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13))
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.Rows = ds.Columns = side
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([header + segment + segment])
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_import_dir(
    folder: Path,
    rows: list[dict[str, str]],
    files: dict[str, bytes],
    columns: list[str] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    header = columns or list(dict.fromkeys(key for row in rows for key in row))
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def leaked_tokens(data: bytes) -> list[str]:
    lowered = data.lower()
    return [t for t in PHI_TOKENS if t.lower().encode() in lowered]
