"""A case's received files as slices of series: de-identified one file at a time, spooled to a
temporary folder, ordered, checked, then stored as :class:`Series` rows (the import service
stores their images)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
class SpooledSlice:
    """A de-identified slice whose stored original and derivative wait in files, not in memory.

    ``image`` is the prepared slice with its bytes left out (``original`` and ``display`` are
    empty): they are in ``original_path`` (shared by the frames of one multi-frame file) and
    ``display_path``, under the import's private temporary folder.
    """

    image: PreparedImage
    original_path: Path
    display_path: Path
    sha256: str  # of the stored (de-identified) original


@dataclass(frozen=True)
class PreparedCase:
    """A case's slices, de-identified and spooled, and the series they make."""

    names: list[str]  # each slice's file (and frame), for messages
    slices: list[SpooledSlice]
    layout: volumes.SeriesLayout

    @property
    def source_hashes(self) -> list[str]:
        """The received files' digests, in the order received (a multi-frame file once)."""
        return list(dict.fromkeys(s.image.source_sha256 for s in self.slices))


def _spool(found: list[PreparedImage], *, folder: Path, number: int) -> list[SpooledSlice]:
    """Write one received file's outputs to ``folder`` and keep only what describes them."""
    original = found[0].original  # the frames of a multi-frame file share it
    original_path = folder / f"{number}{found[0].original_suffix}"
    original_path.write_bytes(original)
    digest = hashlib.sha256(original).hexdigest()
    spooled = []
    for frame, item in enumerate(found):
        display_path = folder / f"{number}-{frame}.png"
        display_path.write_bytes(item.display)
        spooled.append(
            SpooledSlice(
                replace(item, original=b"", display=b""), original_path, display_path, digest
            )
        )
    return spooled


def prepare_case(
    study: Study, case_id: str, uploads: Iterable[Upload], *, folder: Path
) -> PreparedCase:
    """De-identify and derive each received file in turn, spooling the results to ``folder``.

    ``uploads`` is consumed once, one file at a time: only the file at hand (and, of a
    multi-frame object, its frames) is held in memory, so a case of any number of slices
    imports in the memory of one. The series are planned from the de-identified headers kept.
    """
    names: list[str] = []
    prepared: list[SpooledSlice] = []
    problems: list[Problem] = []
    salt = deid_salt(study)
    for number, upload in enumerate(uploads, start=1):
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
        for item in _spool(found, folder=folder, number=number):
            frame = item.image.slice.frame if item.image.slice is not None else None
            names.append(f"{upload.name} frame {frame}" if frame else upload.name)
            prepared.append(item)
    if problems:
        raise ImportRefusedError(problems)
    if not prepared:
        raise ImportRefusedError([Problem(case_id, "no image files")])
    layout = volumes.plan_series(names, [p.image.slice for p in prepared])
    if layout.problems:
        raise ImportRefusedError([Problem(where, why) for where, why in layout.problems])
    return PreparedCase(names, prepared, layout)


def _series_window(slices: Sequence[SpooledSlice]) -> tuple[float, float]:
    """The series' own window in stored units, from its middle slices' derivatives."""
    chosen = [slices[i] for i in volumes.middle_slices(len(slices))]
    values = [
        imaging.read_png(item.display_path, name="derivative").astype(np.int64)
        - item.image.display_offset
        for item in chosen
    ]
    return volumes.stack_window(values)


def create_series(
    case: Case, position: int, plan: volumes.SeriesPlan, prepared: PreparedCase
) -> Series:
    slices = [prepared.slices[i] for i in plan.slices]
    images = [item.image for item in slices]
    header = next((item.slice for item in images if item.slice is not None), None)
    center, width = _series_window(slices)
    return Series.objects.create(
        case=case,
        position=position,
        number=header.series_number if header else None,
        study_uid=header.study_uid if header else "",
        series_uid=plan.series_uid,
        modality=next((item.modality for item in images if item.modality), case.modality),
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
