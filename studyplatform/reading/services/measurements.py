"""A read's length measurements: lines on a slice, their length recomputed by the server.

The page sends each line's endpoints (image pixel coordinates, continuous: pixel ``i`` spans
``[i, i + 1)``) and the length it showed. The server recomputes the length from the series'
PixelSpacing as stored at import (row spacing along y, column spacing along x; the two may
differ) and refuses a line whose shown length disagrees, so the stored number is the one the
reader saw and the one the header gives. Without a spacing the length is in pixels only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from studyplatform.reading.models import Read, ReadMeasurement
from studyplatform.reading.services.errors import InvalidReadError
from studyplatform.studies.selectors import ImageGeometry, image_geometry

MAX_MEASUREMENTS = 50
#: The shown and the recomputed length may differ by rounding only.
TOLERANCE_MM = 0.05


@dataclass(frozen=True)
class Measurement:
    image: int
    series: int
    slice: int
    x1: float
    y1: float
    x2: float
    y2: float
    length_px: float
    length_mm: float | None
    spacing: tuple[float, float] | None


def line_length(
    x1: float, y1: float, x2: float, y2: float, spacing: tuple[float, float] | None
) -> tuple[float, float | None]:
    """The line's length in pixels and, with a [row, column] spacing, in millimetres."""
    dx, dy = x2 - x1, y2 - y1
    pixels = math.hypot(dx, dy)
    if spacing is None:
        return pixels, None
    row, column = spacing
    return pixels, math.hypot(dx * column, dy * row)


def _number(value: Any) -> float | None:
    """``value`` as a finite number, or None (booleans, text and NaN are not numbers here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _one(number: int, raw: Any, geometry: dict[int, ImageGeometry]) -> Measurement:
    where = f"measurement {number}"
    if not isinstance(raw, dict):
        raise InvalidReadError(f"{where} must be an object with image, x1, y1, x2, y2, length_mm")
    image = raw.get("image")
    if not isinstance(image, int) or isinstance(image, bool) or image not in geometry:
        raise InvalidReadError(f"{where} names image {image!r}, which this case lacks")
    shape = geometry[image]
    coords = [c for c in (_number(raw.get(k)) for k in ("x1", "y1", "x2", "y2")) if c is not None]
    if len(coords) != 4:
        raise InvalidReadError(f"{where}: x1, y1, x2 and y2 must be numbers")
    x1, y1, x2, y2 = coords
    for x, y in ((x1, y1), (x2, y2)):
        if not (0 <= x <= shape.columns and 0 <= y <= shape.rows):
            raise InvalidReadError(
                f"{where}: end ({x:g}, {y:g}) is outside image {image} "
                f"({shape.columns} x {shape.rows} pixels)"
            )
    named = (raw.get("series"), raw.get("slice"))
    if named != (None, None) and named != (shape.series, shape.slice_number):
        raise InvalidReadError(
            f"{where} names series {named[0]!r} slice {named[1]!r}, which is not image {image}"
        )
    length_px, length_mm = line_length(x1, y1, x2, y2, shape.pixel_spacing)
    if length_px == 0:
        raise InvalidReadError(f"{where} has no length: both ends are the same point")
    shown = _number(raw.get("length_mm"))
    if length_mm is None:
        if raw.get("length_mm") is not None:
            raise InvalidReadError(
                f"{where}: image {image} has no pixel spacing, so its length is in pixels "
                "only (length_mm must be null)"
            )
    elif shown is None:
        raise InvalidReadError(f"{where}: length_mm must be a number (millimetres)")
    elif abs(shown - length_mm) > TOLERANCE_MM:
        row, column = shape.pixel_spacing or (0.0, 0.0)
        raise InvalidReadError(
            f"{where}: length_mm {shown:g} does not match {length_mm:.2f} mm, computed "
            f"from image {image}'s pixel spacing ({row:g} x {column:g} mm)"
        )
    return Measurement(
        image, shape.series, shape.slice_number, x1, y1, x2, y2, length_px, length_mm,
        shape.pixel_spacing,
    )  # fmt: skip


def parse_measurements(case_id: int, raw: Any) -> list[Measurement]:
    """Check a submission's ``measurements`` against the case's images (None: none)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_MEASUREMENTS:
        raise InvalidReadError(f"measurements must be a list of at most {MAX_MEASUREMENTS} lines")
    if not raw:
        return []
    geometry = image_geometry(case_id)
    return [_one(number, item, geometry) for number, item in enumerate(raw, start=1)]


def create_measurements(read: Read, measurements: list[Measurement]) -> None:
    ReadMeasurement.objects.bulk_create(
        ReadMeasurement(
            read=read,
            number=number,
            image=m.image,
            series=m.series,
            slice=m.slice,
            x1=m.x1,
            y1=m.y1,
            x2=m.x2,
            y2=m.y2,
            length_px=m.length_px,
            length_mm=m.length_mm,
            row_spacing=m.spacing[0] if m.spacing else None,
            column_spacing=m.spacing[1] if m.spacing else None,
        )
        for number, m in enumerate(measurements, start=1)
    )


def audit_view(measurements: list[Measurement]) -> list[dict[str, Any]]:
    return [
        {"image": m.image, "series": m.series, "slice": m.slice,
         "line": [m.x1, m.y1, m.x2, m.y2], "length_mm": m.length_mm}
        for m in measurements
    ]  # fmt: skip
