"""Synthetic CT and MR series written with pydicom: single-frame slices and a multi-frame object.

The volume is a water cylinder (0 HU) in air (-1000 HU) with a bone rod (+1000 HU) whose
centre moves with the slice, so that every slice is different and its place in the stack can
be read back from its pixels: the rod's column is ``ROD_START + slice index``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

ROOT = "1.2.826.0.1.3680043.8.498.77"  # test UIDs: never meant to look like a real scanner's
ROD_START = 4
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # normal (0, 0, 1): position along the normal is z


def phantom_slice(index: int, size: int, *, hu: bool = True) -> np.ndarray:
    """Slice ``index`` of the phantom in HU (int16), or as MR-like unsigned values."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    inside = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.45 * size) ** 2
    values = np.where(inside, 0, -1000).astype(np.int16)
    rod = (np.abs(xx - (ROD_START + index)) <= 1) & (np.abs(yy - centre) <= 2)
    values[rod] = 1000
    if not hu:
        return (values.astype(np.int32) + 1000).astype(np.uint16)
    return values


def _base(sop_class: UID, sop_uid: UID) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("slice", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "Volume^Test"
    ds.PatientID = "VOL-PATIENT-1"
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                    "AccessionNumber", "ReferringPhysicianName"):  # fmt: skip
        setattr(ds, keyword, "")
    ds.Manufacturer = "Synthetic"
    ds.ManufacturerModelName = "Stack 1"
    return ds


def _pixels(ds: Dataset, size: int, *, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if not signed else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0


def ct_slice(
    index: int,
    *,
    study_uid: str,
    series_uid: str,
    series_number: int = 2,
    size: int = 32,
    z0: float = -50.0,
    spacing: float = 2.5,
    instance_number: int | None = None,
    position: bool = True,
    modality: str = "CT",
) -> bytes:
    """One axial slice (stored as raw = HU + 1024 with RescaleIntercept -1024 for CT)."""
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    ds = _base(sop_class, generate_uid(ROOT + ".", entropy_srcs=[series_uid, str(index)]))
    ds.Modality = modality
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number if instance_number is not None else index + 1
    ds.FrameOfReferenceUID = generate_uid(ROOT + ".", entropy_srcs=[study_uid, "frame"])
    ds.SeriesDescription = "Synthetic axial"
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if position:
        ds.ImageOrientationPatient = list(AXIAL)
        ds.ImagePositionPatient = [-20.0, -20.0, z0 + spacing * index]
    ds.SliceThickness = spacing
    ds.PixelSpacing = [0.7, 0.7]
    if modality == "CT":
        _pixels(ds, size, signed=False)
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        raw = (phantom_slice(index, size).astype(np.int32) + 1024).astype("<u2")
    else:
        _pixels(ds, size, signed=False)
        raw = phantom_slice(index, size, hu=False).astype("<u2")
    ds.PixelData = raw.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_series(count: int, *, study_uid: str, series_uid: str, **options: object) -> list[bytes]:
    """``count`` slices of one series, in slice order."""
    return [
        ct_slice(i, study_uid=study_uid, series_uid=series_uid, **options)  # type: ignore[arg-type]
        for i in range(count)
    ]


def enhanced_ct(
    count: int,
    *,
    study_uid: str,
    series_uid: str,
    size: int = 32,
    z0: float = 10.0,
    spacing: float = 1.25,
    frame_order: Sequence[int] | None = None,
) -> bytes:
    """An Enhanced CT object: frame f holds slice ``frame_order[f]``, placed by its per-frame
    functional groups (plane position), rescaled by the shared ones."""
    order = list(frame_order) if frame_order is not None else list(range(count))
    ds = _base(EnhancedCTImageStorage, generate_uid(ROOT + ".", entropy_srcs=[series_uid]))
    ds.Modality = "CT"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 7
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = generate_uid(ROOT + ".", entropy_srcs=[study_uid, "frame"])
    ds.NumberOfFrames = len(order)
    _pixels(ds, size, signed=False)
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(AXIAL)
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    measures.SliceThickness = spacing
    transform = Dataset()
    transform.RescaleIntercept = -1024
    transform.RescaleSlope = 1
    transform.RescaleType = "HU"
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for index in order:
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [-10.0, -10.0, z0 + spacing * index]
        item.PlanePositionSequence = DicomSequence([plane])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    stack = np.stack([phantom_slice(i, size).astype(np.int32) + 1024 for i in order])
    ds.PixelData = stack.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def rod_column(pixels: np.ndarray) -> int:
    """The column of the phantom's rod in a slice (in HU or stored values): its slice index
    is this minus :data:`ROD_START`."""
    row = pixels[pixels.shape[0] // 2]
    return round(float(np.flatnonzero(row == row.max()).mean()))


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
