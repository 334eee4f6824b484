"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis' df.

Entry points: :func:`or_analysis` (a data frame in, an :class:`ORResult` out) and
:func:`imrmc_analysis` (iMRMC's U-statistic analysis for any design, an :class:`IMRMCResult`).
"""

from analysis.mrmc.imrmc import imrmc_analysis
from analysis.mrmc.imrmc_results import IMRMCDifference, IMRMCResult, IMRMCSingle
from analysis.mrmc.obuchowski_rockette import or_analysis, or_analysis_design, or_inference
from analysis.mrmc.results import (
    Difference,
    GlobalTest,
    MeanSquares,
    ORResult,
    ReaderValue,
    SingleTreatment,
    VarComponents,
)

__all__ = [
    "Difference",
    "GlobalTest",
    "IMRMCDifference",
    "IMRMCResult",
    "IMRMCSingle",
    "MeanSquares",
    "ORResult",
    "ReaderValue",
    "SingleTreatment",
    "VarComponents",
    "imrmc_analysis",
    "or_analysis",
    "or_analysis_design",
    "or_inference",
]
