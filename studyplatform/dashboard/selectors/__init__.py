"""Reads for the dashboard, the analysis and the exports."""

from analysis.report import LONG_COLUMNS
from studyplatform.dashboard.selectors.dataversion import data_version
from studyplatform.dashboard.selectors.frame import long_reads_frame
from studyplatform.dashboard.selectors.longframe import (
    LongRows,
    ai_thresholds,
    iter_long_rows,
    study_ai_model,
)
from studyplatform.dashboard.selectors.overview import StudyOverview, study_overview
from studyplatform.dashboard.selectors.protocol import (
    ProtocolHistory,
    ProtocolInForce,
    protocol_history,
    protocol_in_force,
)

__all__ = [
    "LONG_COLUMNS",
    "LongRows",
    "ProtocolHistory",
    "ProtocolInForce",
    "StudyOverview",
    "ai_thresholds",
    "data_version",
    "iter_long_rows",
    "long_reads_frame",
    "protocol_history",
    "protocol_in_force",
    "study_ai_model",
    "study_overview",
]
