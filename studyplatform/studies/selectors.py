"""Reads of a case's images for the viewer: its series and their slices, in order."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch

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
    slice_spacing: float | None
    slice_thickness: float | None
    pixel_spacing: tuple[float, float] | None
    window_center: float | None  # the series' own window, in stored units (e.g. HU)
    window_width: float | None
    ordered_by: str
    slices: tuple[SliceView, ...]


def case_series(case_id: int) -> tuple[SeriesView, ...]:
    """The case's series in order, each with its slices in order (two queries)."""
    slices = Image.objects.order_by("slice_number").only(
        "series_id", "position", "slice_number", "slice_position", "display_offset"
    )
    rows = (
        Series.objects.filter(case_id=case_id)
        .order_by("position")
        .prefetch_related(Prefetch("slices", queryset=slices))
    )
    return tuple(
        SeriesView(
            position=series.position,
            number=series.number,
            modality=series.modality,
            description=series.description,
            body_part=series.body_part,
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
            slices=tuple(
                SliceView(im.position, im.slice_number, im.slice_position, im.display_offset)
                for im in series.slices.all()
            ),
        )
        for series in rows
    )
