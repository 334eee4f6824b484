"""The readers' length measurements, one row per line, for the measurements export.

Measurements belong to the read that recorded them, the original submission: a correction
changes calls, ratings and text, never the lines drawn, so each assignment's measurements are
its original read's.
"""

from __future__ import annotations

from studyplatform.reading.models import ReadMeasurement
from studyplatform.studies.models import Study

MEASUREMENT_COLUMNS = (
    "study", "reader", "case", "arm", "session", "measurement", "series", "slice", "image",
    "x1", "y1", "x2", "y2", "length_px", "length_mm", "row_spacing_mm", "column_spacing_mm",
)  # fmt: skip


def measurement_rows(study: Study) -> list[tuple[object, ...]]:
    """Every measurement of the study's reads, by reader, case and session (MEASUREMENT_COLUMNS;
    ``length_mm`` and the spacings empty where the series has no pixel spacing)."""
    query = (
        ReadMeasurement.objects.filter(read__assignment__session__study=study)
        .order_by(
            "read__assignment__reader__code",
            "read__assignment__case__case_id",
            "read__assignment__session__number",
            "read__assignment__step",
            "number",
        )
        .values_list(
            "read__assignment__reader__code",
            "read__assignment__case__case_id",
            "read__assignment__arm__name",
            "read__assignment__session__number",
            "number",
            "series",
            "slice",
            "image",
            "x1",
            "y1",
            "x2",
            "y2",
            "length_px",
            "length_mm",
            "row_spacing",
            "column_spacing",
        )
    )
    return [(study.slug, *row) for row in query]
