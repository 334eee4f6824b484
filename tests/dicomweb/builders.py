"""Synthetic DICOM studies with identifying data planted, for the archive and STOW-RS tests."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"


@dataclass(frozen=True)
class SyntheticStudy:
    uid: str
    patient_name: str
    patient_id: str
    accession: str
    study_date: str
    instances: list[Dataset]

    def encoded(self) -> list[bytes]:
        return [encode(ds) for ds in self.instances]


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _instance(
    *,
    sop_class: str,
    study_uid: str,
    series_uid: str,
    series_number: int,
    number: int,
    modality: str,
    patient_name: str,
    patient_id: str,
    accession: str,
    study_date: str,
    seed: int,
    pixels: bool = True,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = number
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19480312"
    ds.AccessionNumber = accession
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = "101500"
    ds.InstitutionName = "Rocinante General Hospital"
    ds.ReferringPhysicianName = "Panza^Sancho"
    ds.Manufacturer = "Acme Imaging"
    ds.ManufacturerModelName = "Lumen 9"
    if pixels:
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 4096, size=(32, 32), dtype=np.uint16)
        ds.Rows, ds.Columns = image.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = image.tobytes()
    return ds


def synthetic_study(
    *,
    patient_name: str = "Quixote^Alonso",
    patient_id: str = "MRN7731XQ",
    accession: str = "ACC0001",
    study_date: str = "20250917",
    modality: str = "CR",
    images: int = 2,
    report: bool = False,
    seed: int = 0,
) -> SyntheticStudy:
    """A study of ``images`` images in one series (and optionally a text SR without pixels)."""
    study_uid = generate_uid()
    series_uid = generate_uid()
    common = dict(
        study_uid=study_uid,
        patient_name=patient_name,
        patient_id=patient_id,
        accession=accession,
        study_date=study_date,
        modality=modality,
    )
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else CR_IMAGE_STORAGE
    instances = [
        _instance(
            sop_class=sop_class,
            series_uid=series_uid,
            series_number=1,
            number=number,
            seed=seed * 100 + number,
            **common,
        )
        for number in range(1, images + 1)
    ]
    if report:
        instances.append(
            _instance(
                sop_class=BASIC_TEXT_SR_STORAGE,
                series_uid=generate_uid(),
                series_number=99,
                number=1,
                seed=0,
                pixels=False,
                **{**common, "modality": "SR"},
            )
        )
    return SyntheticStudy(study_uid, patient_name, patient_id, accession, study_date, instances)
