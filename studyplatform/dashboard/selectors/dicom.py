"""What the DICOM export writes, per case: its stored images, effective reads and AI pre-read.

The reads are the effective ones (the original read, or its latest correction), as in the long
frame; the pre-read is the study's pinned model's (:func:`pinned_model`), with the thresholds the
readers and the analysis use (:func:`finding_thresholds`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.prereads.selectors import finding_thresholds, pinned_model
from studyplatform.reading.models import Read
from studyplatform.studies.models import Case, FindingType, Image, ImageFormat, Study


@dataclass(frozen=True)
class FindingCall:
    finding: FindingType
    present: bool
    confidence: int
    marks: tuple[dict[str, int], ...]


@dataclass(frozen=True)
class ReadRecord:
    """One effective read: who (pseudonym), in which arm and session, and its calls."""

    read_id: int
    reader: str
    arm: str
    arm_label: str
    shows_ai: bool
    session: int
    step: int
    submitted_at: datetime
    protocol_version: int
    corrected: bool
    calls: tuple[FindingCall, ...]


@dataclass(frozen=True)
class AIRecord:
    """The pinned model's done pre-read of a case: probability and flag per finding type."""

    model: AIModel
    preread: PreRead
    probabilities: tuple[tuple[FindingType, float, bool], ...]


@dataclass(frozen=True)
class CaseRecord:
    case: Case
    images: tuple[Image, ...]
    reads: tuple[ReadRecord, ...]
    ai: AIRecord | None

    @property
    def not_dicom(self) -> str:
        """Why the case's images cannot be referenced as DICOM ('' when they can)."""
        if not self.images:
            return "the case has no stored image"
        formats = sorted({i.source_format or "unknown" for i in self.images} - {ImageFormat.DICOM})
        if formats:
            return (
                f"imported as {', '.join(formats)} without a DICOM header: there is no "
                "de-identified SOP Instance UID to reference"
            )
        missing = [i.position for i in self.images if not i.sop_instance_uid]
        if missing:
            return f"image(s) {missing} have no SOP Instance UID"
        return ""


def _reads(study: Study) -> dict[int, list[ReadRecord]]:
    reads = (
        Read.objects.filter(assignment__session__study=study, superseded_by__isnull=True)
        .select_related("assignment__reader", "assignment__arm", "assignment__session")
        .prefetch_related("findings__finding_type")
        .order_by(
            "assignment__case_id",
            "assignment__reader__code",
            "assignment__session__number",
            "assignment__step",
            "assignment__arm__order",
        )
    )
    by_case: dict[int, list[ReadRecord]] = defaultdict(list)
    for read in reads:
        a = read.assignment
        calls = tuple(
            FindingCall(f.finding_type, f.present, f.confidence, tuple(f.marks or ()))
            for f in sorted(read.findings.all(), key=lambda f: (f.finding_type.order, f.pk))
        )
        by_case[a.case_id].append(
            ReadRecord(
                read_id=read.pk,
                reader=a.reader.code,
                arm=a.arm.name,
                arm_label=a.arm.label,
                shows_ai=a.arm.shows_ai,
                session=a.session.number,
                step=a.step,
                submitted_at=read.submitted_at,
                protocol_version=read.protocol_version,
                corrected=read.supersedes_id is not None,
                calls=calls,
            )
        )
    return by_case


def _prereads(study: Study, model: AIModel | None) -> dict[int, AIRecord]:
    if model is None:
        return {}
    thresholds = finding_thresholds(study, model)
    rows = (
        PreRead.objects.filter(case__study=study, model=model, status=PreReadStatus.DONE)
        .prefetch_related("findings__finding_type")
        .order_by("case_id")
    )
    out = {}
    for row in rows:
        row.model = model
        probabilities = tuple(
            (
                f.finding_type,
                f.probability,
                f.probability >= thresholds.get(f.finding_type.code, 0.5),
            )
            for f in sorted(row.findings.all(), key=lambda f: (f.finding_type.order, f.pk))
        )
        out[row.case_id] = AIRecord(model=model, preread=row, probabilities=probabilities)
    return out


def dicom_export_cases(study: Study) -> tuple[AIModel | None, list[CaseRecord]]:
    """The study's pinned model (None when it pins none) and every case, in case ID order."""
    model = pinned_model(study)
    reads = _reads(study)
    prereads = _prereads(study, model)
    images: dict[int, list[Image]] = defaultdict(list)
    for image in (
        Image.objects.filter(case__study=study)
        .select_related("series")
        .order_by("case_id", "position")
    ):
        images[image.case_id].append(image)
    cases = []
    for case in Case.objects.filter(study=study).order_by("case_id"):
        cases.append(
            CaseRecord(
                case=case,
                images=tuple(images.get(case.pk, ())),
                reads=tuple(reads.get(case.pk, ())),
                ai=prereads.get(case.pk),
            )
        )
    return model, cases
