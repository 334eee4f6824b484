"""A CT phantom as a real DICOM series: one CT Image Storage file per slice, written with pydicom.

Slices are stored as int16 with RescaleSlope 1 and RescaleIntercept -1024 (stored value = HU +
1024), axial (ImageOrientationPatient 1\\0\\0\\0\\1\\0, so the slices' normal is +z), slice ``k``
at z = ``k`` x spacing: the importer's order along the normal is the phantom's slice order. UIDs
derive from the seed (``generate_uid`` with entropy sources), so a phantom's files are the same
bytes on every run and a re-import is recognised as such.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from studyplatform.studies.phantoms_ct import HU_MIN, CtPhantom

RESCALE_INTERCEPT = -1024
SERIES_NUMBER = 2


@dataclass(frozen=True)
class CtFile:
    name: str
    data: bytes


def _uid(*parts: object) -> UID:
    return UID(generate_uid(entropy_srcs=["studyplatform-ct-phantom", *map(str, parts)]))


def ct_series_files(
    phantom: CtPhantom,
    *,
    patient_id: str,
    description: str = "Chest CT axial",
    window: tuple[float, float] = (-600.0, 1500.0),
) -> list[CtFile]:
    """The phantom's slices as DICOM files, named ``slice-001.dcm`` ... in slice order.

    ``window`` (center, width) in HU is written as the series' default window (lung here).
    """
    volume = phantom.volume
    slices, rows, columns = volume.shape
    vendor = phantom.vendor
    study_uid = _uid(phantom.seed, patient_id, "study")
    series_uid = _uid(phantom.seed, patient_id, "series")
    frame_uid = _uid(phantom.seed, patient_id, "frame")
    origin = -(columns - 1) / 2 * phantom.pixel_spacing
    files = []
    for k in range(slices):
        sop_uid = _uid(phantom.seed, patient_id, "slice", k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(f"slice-{k + 1:03d}", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.PatientName = f"Phantom^{patient_id}"
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate = ds.SeriesDate = "20260101"
        ds.StudyTime = ds.SeriesTime = "120000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = vendor.manufacturer
        ds.ManufacturerModelName = vendor.model_name
        ds.ConvolutionKernel = vendor.kernel_name
        ds.BodyPartExamined = "CHEST"
        ds.SeriesDescription = description
        ds.SeriesNumber = SERIES_NUMBER
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [origin, origin, round(k * phantom.slice_spacing, 4)]
        ds.SliceLocation = round(k * phantom.slice_spacing, 4)
        ds.SliceThickness = phantom.slice_thickness
        ds.SpacingBetweenSlices = phantom.slice_spacing
        ds.PixelSpacing = [round(phantom.pixel_spacing, 6)] * 2
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1  # signed
        ds.RescaleIntercept = RESCALE_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = window
        stored = np.clip(volume[k].astype(np.int32), HU_MIN, None) - RESCALE_INTERCEPT
        ds.PixelData = stored.astype("<i2").tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(CtFile(f"slice-{k + 1:03d}.dcm", buffer.getvalue()))
    return files
