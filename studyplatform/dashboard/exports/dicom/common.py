"""What the DICOM writers share: derived UIDs, codes, the source headers, fixed timestamps.

Every UID of a written object is derived from stable inputs (the study, the case's
de-identified Study Instance UID, the reader's pseudonym, the read's ID, the model's name,
version and sha256), and every date and time in it from a stored moment (the read's submission,
the pre-read's end), so that exporting again writes the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Final

import highdicom as hd
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_ROOT_UID, UID, generate_uid

from studyplatform.studies.deid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from studyplatform.studies.models import FindingType, Image

MANUFACTURER: Final = "studyplatform"
#: The coding scheme of the study's own concepts (finding types, arms): a private scheme, as
#: PS3.16 8.2 allows ("99" prefix); each object names it in its Coding Scheme Identification.
LOCAL_SCHEME: Final = "99STUDYPLATFORM"
READ_SERIES_NUMBER: Final = 901
AI_SR_SERIES_NUMBER: Final = 951
AI_MAP_SERIES_NUMBER: Final = 952

PROCEDURES: Final = {
    "CR": codes.LN.XRUnspecifiedBodyRegion,
    "DX": codes.LN.XRUnspecifiedBodyRegion,
    "MG": codes.LN.XRUnspecifiedBodyRegion,
    "CT": codes.LN.CTUnspecifiedBodyRegion,
    "MR": codes.LN.MRIUnspecifiedBodyRegion,
}


def derived_uid(*parts: object) -> UID:
    """A UID that depends only on ``parts`` (the same inputs give the same UID)."""
    return generate_uid(PYDICOM_ROOT_UID, entropy_srcs=["studyplatform export", *map(str, parts)])


def finding_concept(finding: FindingType) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=finding.code[:16], scheme_designator=LOCAL_SCHEME,
                              meaning=finding.name[:64])  # fmt: skip


def local_concept(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(
        value=value[:16], scheme_designator=LOCAL_SCHEME, meaning=meaning[:64]
    )


def presence(present: bool) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept.from_code(codes.DCM.Present if present else codes.DCM.Absent)


def person_name(code: str) -> str:
    """A pseudonym as a one-component person name (the trailing caret says it is a family name)."""
    return f"{code}^"


def safe_name(text: str) -> str:
    """``text`` as a file name part: letters, digits, ``.``, ``_``, ``-``; a digest when changed."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("._") or "x"
    if clean != text:
        clean = f"{clean[:40]}-{sha256(text.encode()).hexdigest()[:8]}"
    return clean


def stamp(ds: Dataset, moment: datetime) -> None:
    """Set every date and time of the object's creation to ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    date, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    for prefix in ("Content", "InstanceCreation", "Series"):
        if f"{prefix}Date" in ds or prefix == "Content":
            setattr(ds, f"{prefix}Date", date)
            setattr(ds, f"{prefix}Time", time)
    if "TimezoneOffsetFromUTC" in ds:
        ds.TimezoneOffsetFromUTC = "+0000"
    _restamp_items(ds, date, time)
    _restamp_equipment(ds, date, time)


def _restamp_items(ds: Dataset, date: str, time: str) -> None:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                if "ObservationDateTime" in item:
                    item.ObservationDateTime = f"{date}{time}"
                _restamp_items(item, date, time)


def _restamp_equipment(ds: Dataset, date: str, time: str) -> None:
    """The equipment item highdicom adds (the last) says when it ran: make it the moment."""
    equipment = ds.get("ContributingEquipmentSequence")
    if equipment:
        equipment[-1].ContributionDateTime = f"{date}{time}"


def _dimension_uids(ds: Dataset) -> None:
    """highdicom draws a random Dimension Organization UID: derive it from the object's UID."""
    if "DimensionOrganizationSequence" not in ds:
        return
    uid = derived_uid("dimension organization", ds.SOPInstanceUID)
    for item in ds.DimensionOrganizationSequence:
        item.DimensionOrganizationUID = uid
    for item in ds.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = uid


def _placeholder_dates(ds: Dataset) -> None:
    """Leave empty (Type 2: unknown) the dates that de-identification set to its placeholder.

    The de-identified originals carry 00010101 for the study and birth dates, which dciodvfy
    rejects as a DA value; the derived objects say "unknown" instead.
    """
    for keyword in ("StudyDate", "PatientBirthDate", "AcquisitionDate"):
        if str(ds.get(keyword, "")).startswith("0001"):
            setattr(ds, keyword, "")


def coding_schemes(ds: Dataset) -> None:
    """Name the private coding scheme in the object (Coding Scheme Identification Sequence)."""
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "Reader-study platform: the study's finding types and arms"
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    ds.CodingSchemeIdentificationSequence = [item]


def finish(ds: Dataset, moment: datetime) -> Dataset:
    """Stamp, name the local scheme, and write the platform's own file meta identity."""
    stamp(ds, moment)
    _dimension_uids(ds)
    _placeholder_dates(ds)
    coding_schemes(ds)
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return ds


@dataclass(frozen=True)
class Source:
    """A stored image's de-identified header, and which frame of it the image is."""

    image: Image
    header: Dataset

    @property
    def frame(self) -> int | None:
        frames = int(self.header.get("NumberOfFrames", 1) or 1)
        return self.image.frame if frames > 1 else None

    def region_source(self) -> hd.sr.SourceImageForRegion:
        frame = self.frame
        return hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=self.header.SOPClassUID,
            referenced_sop_instance_uid=self.header.SOPInstanceUID,
            referenced_frame_numbers=[frame] if frame else None,
        )


def load_sources(images: Iterable[Image]) -> dict[int, Source]:
    """The headers of the stored (de-identified) originals, by image position in the case."""
    headers: dict[str, Dataset] = {}
    sources = {}
    for image in images:
        name = str(image.original.name)
        if name not in headers:  # the frames of a multi-frame original share one file
            with image.original.open("rb") as handle:
                headers[name] = dcmread(handle, stop_before_pixels=True)
        sources[image.position] = Source(image=image, header=headers[name])
    return sources


def evidence(sources: dict[int, Source]) -> list[Dataset]:
    """One header per referenced instance (frames of one file count once), in image order."""
    seen: dict[str, Dataset] = {}
    for position in sorted(sources):
        header = sources[position].header
        seen.setdefault(str(header.SOPInstanceUID), header)
    return list(seen.values())
