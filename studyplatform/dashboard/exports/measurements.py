"""The measurements CSV: one row per length line a reader drew (MEASUREMENT_COLUMNS)."""

from __future__ import annotations

import csv
import io

from studyplatform.dashboard.exports.cells import neutralize
from studyplatform.dashboard.selectors.measurements import MEASUREMENT_COLUMNS, measurement_rows
from studyplatform.studies.models import Study


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return neutralize(value)


def measurements_csv(study: Study) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MEASUREMENT_COLUMNS)
    for row in measurement_rows(study):
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()
