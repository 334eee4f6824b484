"""Reads for the dashboard, the analysis and the exports."""

from analysis.report import LONG_COLUMNS
from studyplatform.dashboard.selectors.longframe import (
    LongRows,
    ai_thresholds,
    data_version,
    iter_long_rows,
    long_reads_frame,
    study_ai_model,
)
from studyplatform.dashboard.selectors.overview import StudyOverview, study_overview

__all__ = [
    "LONG_COLUMNS",
    "LongRows",
    "StudyOverview",
    "ai_thresholds",
    "data_version",
    "iter_long_rows",
    "long_reads_frame",
    "study_ai_model",
    "study_overview",
]
