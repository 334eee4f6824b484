"""A reader's read of a case as a DICOM Comprehensive 3D SR Measurement Report (TID 1500).

- Observer: a person named by the reader's pseudonym (never a user name or email).
- Per finding type, one Measurements and Qualitative Evaluations group (TID 1501): the finding
  type as the finding, the call as a qualitative evaluation (the finding type: Present or
  Absent), the confidence 0-100 as Certainty of Finding in percent, and the reading arm (coded in
  the study's own scheme) with its session as the group's Session.
- Per mark, one Planar ROI group (TID 1410): a 2D POINT in the referenced image's pixel space
  (the centre of the marked pixel: column + 0.5, row + 0.5), referencing the de-identified SOP
  Instance UID of the marked image (for a CT or MR stack, the marked slice; for a multi-frame
  original, the frame), with the mark's own confidence where the reader gave one.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from studyplatform.dashboard.exports.dicom.common import (
    MANUFACTURER,
    PROCEDURES,
    READ_SERIES_NUMBER,
    Source,
    derived_uid,
    evidence,
    finding_concept,
    finish,
    local_concept,
    person_name,
    presence,
)
from studyplatform.dashboard.selectors.dicom import CaseRecord, FindingCall, ReadRecord

ARM_CONCEPT = ("arm", "Reading arm")


def _certainty(value: int) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=codes.DCM.CertaintyOfFinding, value=float(value),
                             unit=codes.UCUM.Percent)  # fmt: skip


def _session_text(read: ReadRecord) -> str:
    step = f", step {read.step}" if read.step > 1 else ""
    return f"session {read.session}{step}, arm {read.arm}"


def _finding_group(
    key: str, read: ReadRecord, call: FindingCall
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    concept = finding_concept(call.finding)
    arm = hd.sr.QualitativeEvaluation(
        local_concept(*ARM_CONCEPT), local_concept(read.arm, read.arm_label or read.arm)
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(key, call.finding.code), identifier=call.finding.code[:64]
        ),
        finding_type=concept,
        session=_session_text(read),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(concept, presence(call.present)), arm],
        measurements=[_certainty(call.confidence)],
    )


def _mark_groups(
    key: str, call: FindingCall, sources: dict[int, Source]
) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    concept = finding_concept(call.finding)
    groups = []
    for number, mark in enumerate(call.marks, start=1):
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POINT,
            graphic_data=np.array([[mark["x"] + 0.5, mark["y"] + 0.5]]),
            source_image=sources[mark["image"]].region_source(),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=derived_uid(key, call.finding.code, "mark", number),
                    identifier=f"{call.finding.code} mark {number}"[:64],
                ),
                referenced_region=region,
                finding_type=concept,
                qualitative_evaluations=[hd.sr.QualitativeEvaluation(concept, presence(True))],
                measurements=[_certainty(mark.get("confidence", call.confidence))],
            )
        )
    return groups


def read_sr(
    record: CaseRecord, read: ReadRecord, sources: dict[int, Source]
) -> hd.sr.Comprehensive3DSR:
    """The read as one SR instance in the case's (de-identified) DICOM study."""
    study_uid = str(sources[min(sources)].header.StudyInstanceUID)
    key = f"read {record.case.study_id} {study_uid} {read.read_id}"
    groups: list[
        hd.sr.MeasurementsAndQualitativeEvaluations
        | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    ] = []
    for call in read.calls:
        groups.append(_finding_group(key, read, call))
        groups.extend(_mark_groups(key, call, sources))
    observer = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=person_name(read.reader)
            ),
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=PROCEDURES.get(record.case.modality, PROCEDURES["CR"]),
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence(sources),
        content=report[0],
        series_instance_uid=derived_uid(
            "read series",
            record.case.study_id,
            study_uid,
            read.reader,
            read.arm,
            read.session,
            read.step,
        ),
        series_number=READ_SERIES_NUMBER,
        sop_instance_uid=derived_uid(key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
    )
    sr.SeriesDescription = f"Read {read.reader} {_session_text(read)}"[:64]
    finish(sr, read.submitted_at)
    return sr
