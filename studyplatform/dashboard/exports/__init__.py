"""A study's data in the formats statisticians' tools read.

``long`` (DESIGN.md long reads CSV, streamed), ``marks`` (one row per reader's mark, scored against
the truth's lesion locations), ``telemetry`` (one row per series of each read: slices shown, time
on screen, AI overlay), ``mrmcaov`` (``reader,treatment,case,truth, rating``), ``rjafroc``
(JAFROC Excel workbook for RJafroc's ``DfReadDataFile``: the real marks when the truth has lesion
locations), ``imrmc`` (iMRMC's text input), ``json`` (the analysis), ``html`` (the report, one
file), and ``sr``: the reads and AI pre-reads as DICOM, zipped (:mod:`.dicom`).
"""

from studyplatform.dashboard.exports.cells import neutralize
from studyplatform.dashboard.exports.formats import (
    FORMATS,
    PER_FINDING,
    Export,
    ExportError,
    build_export,
)

__all__ = ["FORMATS", "PER_FINDING", "Export", "ExportError", "build_export", "neutralize"]
