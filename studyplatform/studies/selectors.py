"""Reads of a case's images for the viewer: its series and their slices, in order."""

from __future__ import annotations

import math
from dataclasses import dataclass

from studyplatform.studies.models import Image, Series


@dataclass(frozen=True)
class SliceView:
    image: int  # the Image's position in the case: what the pixels URL and marks name
    slice_number: int  # from 1 in the series
    slice_position: float | None  # mm along the series' normal
    display_offset: int  # derivative value = stored value (e.g. HU) + offset


@dataclass(frozen=True)
class SeriesView:
    position: int
    number: int | None
    modality: str
    description: str
    body_part: str
    view_position: str
    normal: tuple[float, float, float] | None
    slice_spacing: float | None
    slice_thickness: float | None
    pixel_spacing: tuple[float, float] | None
    window_center: float | None  # the series' own window, in stored units (e.g. HU)
    window_width: float | None
    ordered_by: str
    slices: tuple[SliceView, ...]


def case_series(case_id: int) -> tuple[SeriesView, ...]:
    """The case's series in order, each with its slices in order (one query).

    A series whose header gave no modality takes the case's.
    """
    rows = (
        Image.objects.filter(case_id=case_id)
        .select_related("series__case")
        .order_by("series__position", "slice_number")
    )
    grouped: dict[int, tuple[Series, list[SliceView]]] = {}
    for im in rows:
        _, slices = grouped.setdefault(im.series_id, (im.series, []))
        slices.append(SliceView(im.position, im.slice_number, im.slice_position, im.display_offset))
    return tuple(
        SeriesView(
            position=series.position,
            number=series.number,
            modality=series.modality or series.case.modality,
            description=series.description,
            body_part=series.body_part,
            view_position=series.view_position,
            normal=_normal(series.normal),
            slice_spacing=series.slice_spacing,
            slice_thickness=series.slice_thickness,
            pixel_spacing=(
                (float(series.pixel_spacing[0]), float(series.pixel_spacing[1]))
                if series.pixel_spacing
                else None
            ),
            window_center=series.window_center,
            window_width=series.window_width,
            ordered_by=series.ordered_by,
            slices=tuple(slices),
        )
        for series, slices in grouped.values()
    )


def _normal(value: object) -> tuple[float, float, float] | None:
    if isinstance(value, list) and len(value) == 3:
        return (float(value[0]), float(value[1]), float(value[2]))
    return None


@dataclass(frozen=True)
class ImageGeometry:
    rows: int
    columns: int
    series: int  # the series' position in the case
    slice_number: int
    pixel_spacing: tuple[float, float] | None  # [row, column] spacing in mm, from the header


def image_geometry(case_id: int) -> dict[int, ImageGeometry]:
    """Per image position of the case: its size, series, slice and the series' pixel spacing."""
    found = {}
    for position, rows, columns, series, number, spacing in (
        Image.objects.filter(case_id=case_id)
        .order_by("position")
        .values_list(
            "position",
            "rows",
            "columns",
            "series__position",
            "slice_number",
            "series__pixel_spacing",
        )
    ):
        found[position] = ImageGeometry(rows, columns, series, number, _spacing(spacing))
    return found


def _spacing(value: object) -> tuple[float, float] | None:
    """A usable [row, column] spacing (two positive finite numbers), else None."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    try:
        row, column = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(row) and math.isfinite(column) and row > 0 and column > 0):
        return None
    return (row, column)
