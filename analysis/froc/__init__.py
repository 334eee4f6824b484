"""Free-response (FROC) analysis: RJafroc's data, figures of merit and OR/DBM inference.

:mod:`analysis.froc.data` holds the marks (:class:`FrocData`) and RJafroc's Excel workbook.
"""

from analysis.froc.data import FrocData, froc_data, read_workbook, workbook_bytes

__all__ = ["FrocData", "froc_data", "read_workbook", "workbook_bytes"]
