"""The AI's pre-read of a case as DICOM: a Measurement Report SR and its Grad-CAM map.

The SR (Comprehensive 3D SR, TID 1500) has a device observer (the model: its name, version as
model name, and a UID derived from its sha256) and, per finding type, a TID 1501 group with the
model's probability (DCM Probability, unit 1), the call at the study's operating threshold
(Present or Absent) and the algorithm's identification (name, version, and its file sha256 as
the algorithm's parameter).

The Grad-CAM heatmap is written as a fractional Segmentation (one segment, Gradient-weighted
class activation, values 0-1 scaled to 0-255): highdicom 0.28's Parametric Map needs a frame of
reference, which a radiograph (CR, DX) does not have, and one kind of object for every case
reads more simply. The stored map lies on the model's input grid over the whole displayed image;
it is resized (bilinear) to the source image's rows and columns, as the viewer stretches it. A
slices model's map holds one map per slice of the case's first series: the segmentation then
has one frame per slice, each referencing its slice's instance.
"""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from studyplatform.dashboard.exports.dicom.common import (
    AI_MAP_SERIES_NUMBER,
    AI_SR_SERIES_NUMBER,
    MANUFACTURER,
    PROCEDURES,
    Source,
    derived_uid,
    evidence,
    finding_concept,
    finish,
    presence,
)
from studyplatform.dashboard.selectors.dicom import AIRecord, CaseRecord
from studyplatform.prereads.heatmaps import slice_heatmap_images


def _algorithm(ai: AIRecord) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=ai.model.name[:64], version=ai.model.version[:64],
        parameters=[f"sha256={ai.model.sha256}"],
    )  # fmt: skip


def _model_key(ai: AIRecord) -> str:
    return f"{ai.model.name} {ai.model.version} {ai.model.sha256}"


def _study_uid(sources: dict[int, Source]) -> str:
    return str(sources[min(sources)].header.StudyInstanceUID)


def ai_sr(record: CaseRecord, ai: AIRecord, sources: dict[int, Source]) -> hd.sr.Comprehensive3DSR:
    study_uid = _study_uid(sources)
    key = f"ai {record.case.study_id} {study_uid} {_model_key(ai)}"
    algorithm = _algorithm(ai)
    groups = []
    for finding, probability, flagged in ai.probabilities:
        concept = finding_concept(finding)
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=derived_uid(key, finding.code), identifier=finding.code[:64]
                ),
                finding_type=concept,
                algorithm_id=algorithm,
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.Probability,
                        value=float(probability),
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    )
                ],
                qualitative_evaluations=[hd.sr.QualitativeEvaluation(concept, presence(flagged))],
            )
        )
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=derived_uid("model", ai.model.name, ai.model.version, ai.model.sha256),
                name=ai.model.name[:64],
                model_name=ai.model.version[:64],
                manufacturer_name=MANUFACTURER,
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
        series_instance_uid=derived_uid("ai series", key),
        series_number=AI_SR_SERIES_NUMBER,
        sop_instance_uid=derived_uid(key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
    )
    sr.SeriesDescription = f"AI pre-read {ai.model.name} {ai.model.version}"[:64]
    finish(sr, ai.preread.finished_at or ai.preread.queued_at)
    return sr


def _gray(image: PILImage.Image, rows: int, columns: int) -> np.ndarray:
    resized = image.convert("L").resize((columns, rows), PILImage.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def heatmap_frames(ai: AIRecord, sources: dict[int, Source]) -> tuple[list[Dataset], np.ndarray]:
    """The map's source images and its frames (n, rows, columns), values 0-1.

    A stack stored as one multi-frame original is one source image: its frames are then put
    in the original's frame order, which highdicom pairs with the source's frames.
    """
    preread = ai.preread
    with preread.heatmap.open("rb") as handle:
        stacked = handle.read()
    slices = preread.heatmap_slices
    if slices == 0:
        first = sources[min(sources)]
        with PILImage.open(io.BytesIO(stacked)) as image:
            return [first.header], _gray(image, first.image.rows, first.image.columns)[None]
    series_id = sources[min(sources)].image.series_id
    stack = sorted(
        (s for s in sources.values() if s.image.series_id == series_id),
        key=lambda s: s.image.slice_number,
    )
    if len(stack) != slices:
        raise ValueError(
            f"the heatmap holds {slices} slice maps but the first series has {len(stack)} slices"
        )
    maps = slice_heatmap_images(stacked, slices=slices)  # the stack decoded once
    frames = np.stack([_gray(maps[k], s.image.rows, s.image.columns) for k, s in enumerate(stack)])
    if len({id(s.header) for s in stack}) == 1 and len(stack) > 1:
        order = sorted(range(len(stack)), key=lambda k: stack[k].frame or 0)
        return [stack[0].header], frames[order]
    return [s.header for s in stack], frames


def ai_map(record: CaseRecord, ai: AIRecord, sources: dict[int, Source]) -> hd.seg.Segmentation:
    study_uid = _study_uid(sources)
    key = f"ai map {record.case.study_id} {study_uid} {_model_key(ai)}"
    headers, frames = heatmap_frames(ai, sources)
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Grad-CAM",
        segmented_property_category=codes.DCM.AbnormalRegion,
        segmented_property_type=codes.DCM.GradientWeightedClassActivation,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=ai.model.name[:64],
            family=codes.DCM.ArtificialIntelligence,
            version=ai.model.version[:64],
            parameters={"sha256": ai.model.sha256},
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=headers,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=[description],
        series_instance_uid=derived_uid("ai map series", key),
        series_number=AI_MAP_SERIES_NUMBER,
        sop_instance_uid=derived_uid(key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=ai.model.name[:64],
        software_versions=ai.model.version[:64],
        device_serial_number=ai.model.sha256[:64],
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        omit_empty_frames=False,
        content_label="GRADCAM",
        content_description="Grad-CAM heatmap of the AI pre-read (normalized 0-1)",
    )
    if "FrameOfReferenceUID" not in seg:
        # Type 2C without a frame of reference: copied from the radiograph (empty if it has none).
        seg.PatientOrientation = headers[0].get("PatientOrientation", "")
    seg.SeriesDescription = f"AI Grad-CAM {ai.model.name} {ai.model.version}"[:64]
    finish(seg, ai.preread.finished_at or ai.preread.queued_at)
    return seg
