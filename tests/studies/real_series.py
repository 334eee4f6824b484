"""Real CT and MR series for import and viewer tests: scanner files, not synthetic ones.

- ``tests/data/dicom/pcir/``: slices of real CT and MR series (GE LightSpeed CT, Philips MR),
  downsized to 16 x 16 by pydicom's authors and shipped with pydicom (see the README there);
- pydicom-data's ``emri_small*.dcm``: a real enhanced MR object of 10 frames, in five transfer
  syntaxes; pydicom's ``eCT_Supplemental.dcm``: a NEMA enhanced CT object of 2 frames, 512 x 512.

The expected values come from pydicom's own decoding of the received files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, pixel_array

from tests.studies.import_fixtures import pydicom_file

DATA = Path(__file__).resolve().parent.parent / "data" / "dicom" / "pcir"
CT_SERIES = DATA / "ct-smartscore"  # 5 axial slices, 2.5 mm, instance numbers against z
MR_SERIES = DATA / "mr-angio"  # 7 radial slices: no common orientation
CT_PARTIAL = DATA / "ct-brain-partial"  # 4 slices of a series, 200 mm missing between two
EMRI = ("emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm")
EMRI_MORE = ("emri_small_jpeg_ls_lossless.dcm", "emri_small_big_endian.dcm")
ENHANCED_CT = "eCT_Supplemental.dcm"


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.isdigit())


def stored_units(path: Path) -> dict[tuple[int | None, int | None], np.ndarray]:
    """Each slice of a received file in stored units (HU for CT), by (instance number, frame).

    A multi-frame object's frames are rescaled as its functional groups say.
    """
    ds = pydicom.dcmread(path)
    number = int(ds.InstanceNumber)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return {(number, None): apply_modality_lut(ds.pixel_array, ds).astype(np.float64)}
    stack = pixel_array(ds).reshape(frames, ds.Rows, ds.Columns)
    shared: Any = (
        ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else {}
    )
    transform = shared.get("PixelValueTransformationSequence")
    slope, intercept = (
        (float(transform[0].RescaleSlope), float(transform[0].RescaleIntercept))
        if transform
        else (1.0, 0.0)
    )
    return {(number, k + 1): stack[k] * slope + intercept for k in range(frames)}


def identifying_values(paths: list[Path]) -> set[str]:
    """The received files' names, IDs and original UIDs: none may reach what is stored."""
    found: set[str] = set()
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for element in ds.iterall():
            if element.VR == "PN" and element.value:
                found.add(str(element.value))
        for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if ds.get(keyword):
                found.add(str(ds.get(keyword)))
    return found


__all__ = ["pydicom_file"]
