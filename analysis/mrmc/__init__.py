"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis' df.

Entry point: :func:`or_analysis` (a data frame in, an :class:`ORResult` out).
"""

from analysis.mrmc.obuchowski_rockette import or_analysis, or_analysis_design
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
    "MeanSquares",
    "ORResult",
    "ReaderValue",
    "SingleTreatment",
    "VarComponents",
    "or_analysis",
    "or_analysis_design",
]
