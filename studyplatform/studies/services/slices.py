"""A case's received files as slices of series: de-identified, ordered, checked, then stored
as :class:`Series` rows (the import service stores their images)."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from studyplatform.studies import imaging, volumes
from studyplatform.studies.deid import DeidentificationError
from studyplatform.studies.imaging import ImageError
from studyplatform.studies.importing import PreparedImage, Problem, Upload, prepare_slices
from studyplatform.studies.models import Case, Series, Study
from studyplatform.studies.services.errors import ImportRefusedError


def deid_salt(study: Study) -> str:
    """The study's secret for replacement UIDs: stable for the study, unguessable without it."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"deid-uid:{study.slug}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PreparedCase:
    """A case's slices, de-identified, and the series they make."""

    names: list[str]  # each slice's file (and frame), for messages
    slices: list[PreparedImage]
    layout: volumes.SeriesLayout


def prepare_case(study: Study, case_id: str, uploads: Sequence[Upload]) -> PreparedCase:
    names: list[str] = []
    prepared: list[PreparedImage] = []
    problems: list[Problem] = []
    salt = deid_salt(study)
    for upload in uploads:
        try:
            found = prepare_slices(
                upload,
                pseudonym=case_id,
                salt=salt,
                max_decoded_bytes=settings.IMAGE_MAX_DECODED_BYTES,
            )
        except (ImageError, DeidentificationError) as exc:
            message = str(exc)
            prefix = f"{upload.name}: "
            reason = message[len(prefix) :] if message.startswith(prefix) else message
            problems.append(Problem(upload.name, reason))
            continue
        for item in found:
            frame = item.slice.frame if item.slice is not None else None
            names.append(f"{upload.name} frame {frame}" if frame else upload.name)
            prepared.append(item)
    if problems:
        raise ImportRefusedError(problems)
    layout = volumes.plan_series(names, [p.slice for p in prepared])
    if layout.problems:
        raise ImportRefusedError([Problem(where, why) for where, why in layout.problems])
    return PreparedCase(names, prepared, layout)


def _series_window(slices: Sequence[PreparedImage]) -> tuple[float, float]:
    """The series' own window in stored units, from its middle slices' derivatives."""
    chosen = [slices[i] for i in volumes.middle_slices(len(slices))]
    values = [
        imaging.read_png(io.BytesIO(item.display), name="derivative").astype(np.int64)
        - item.display_offset
        for item in chosen
    ]
    return volumes.stack_window(values)


def create_series(
    case: Case, position: int, plan: volumes.SeriesPlan, prepared: PreparedCase
) -> Series:
    slices = [prepared.slices[i] for i in plan.slices]
    header = next((item.slice for item in slices if item.slice is not None), None)
    center, width = _series_window(slices)
    return Series.objects.create(
        case=case,
        position=position,
        number=header.series_number if header else None,
        study_uid=header.study_uid if header else "",
        series_uid=plan.series_uid,
        modality=next((item.modality for item in slices if item.modality), case.modality),
        description=header.description if header else "",
        body_part=header.body_part if header else "",
        view_position=header.view_position if header else "",
        normal=list(plan.normal) if plan.normal else None,
        slice_thickness=header.slice_thickness if header else None,
        slice_spacing=plan.spacing,
        pixel_spacing=list(header.pixel_spacing) if header and header.pixel_spacing else None,
        ordered_by=plan.ordered_by,
        window_center=center,
        window_width=width,
    )
