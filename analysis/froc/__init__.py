"""Free-response (FROC) analysis: RJafroc's data, figures of merit and OR/DBM inference.

:mod:`analysis.froc.data` holds the marks (:class:`FrocData`) and RJafroc's Excel workbook,
:mod:`analysis.froc.fom` the figures of merit and their jackknife, and
:mod:`analysis.froc.analysis` the OR and DBM analysis (:func:`froc_analysis`), as RJafroc 2.1.3.
"""

from analysis.froc.data import FrocData, froc_data, read_workbook, workbook_bytes

__all__ = ["FrocData", "froc_data", "read_workbook", "workbook_bytes"]
