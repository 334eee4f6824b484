"""A study's reading telemetry per read and series: the rows of the ``telemetry`` export.

One row per series of each read that has telemetry (the original read of an assignment: a
correction fixes the answer, not the reading), ordered by reader, case, arm and series. A row's
``time_s`` is that series' own seconds on screen, in any viewport: with several viewports a read's
rows may sum to more than its time on screen (the long export's ``series_time_s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from studyplatform.reading.models import ReadTelemetry
from studyplatform.studies.models import Study

TELEMETRY_EXPORT_COLUMNS: tuple[str, ...] = (
    "study", "reader", "case", "arm", "session", "series", "slices_total", "slices_viewed",
    "viewed_slices", "time_s", "ai_overlay_on", "ai_overlay_s", "ai_first_view_s",
)  # fmt: skip


def slice_ranges(numbers: list[int]) -> str:
    """Slice numbers as ranges: ``[1, 2, 3, 7, 9, 10]`` -> ``"1-3 7 9-10"``."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return " ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def telemetry_rows(study: Study) -> Iterator[tuple[Any, ...]]:
    """The per-series rows (TELEMETRY_EXPORT_COLUMNS order) of the study's read telemetry."""
    records = (
        ReadTelemetry.objects.filter(
            read__assignment__session__study=study, read__supersedes__isnull=True
        )
        .order_by(
            "read__assignment__reader__code",
            "read__assignment__case__case_id",
            "read__assignment__arm__name",
        )
        .values_list(
            "read__assignment__reader__code",
            "read__assignment__case__case_id",
            "read__assignment__arm__name",
            "read__assignment__session__number",
            "series",
            "ai_overlay_on",
            "ai_overlay_s",
            "ai_first_view_s",
        )
    )
    for reader, case, arm, session, series, overlay_on, overlay_s, first in records.iterator():
        for s in sorted(series, key=lambda item: item["series"]):
            yield (
                study.slug, reader, case, arm, session, s["series"], s["slices_total"],
                len(s["slices_viewed"]), slice_ranges(s["slices_viewed"]), s["time_s"],
                int(overlay_on), overlay_s, first,
            )  # fmt: skip
