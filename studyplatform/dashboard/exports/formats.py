"""Writers of every export format.

The long CSV streams from the database cursor. The per-finding formats (MRMCaov, RJafroc,
iMRMC) take one finding type's ROC data, built by the same function as the report's MRMC
analysis (:func:`analysis.report.mrmc_frame`: confidence as the rating, arms as treatments,
``unassisted`` first), so each of them gives the report's numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.report import LONG_COLUMNS, check_long_frame, mrmc_frame
from studyplatform.dashboard.exports.cells import neutralize
from studyplatform.studies.models import Study

FORMATS = ("long", "mrmcaov", "rjafroc", "imrmc", "json", "html")
PER_FINDING = ("mrmcaov", "rjafroc", "imrmc")
CONTENT_TYPES = {
    "long": "text/csv; charset=utf-8",
    "mrmcaov": "text/csv; charset=utf-8",
    "rjafroc": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "imrmc": "text/plain; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}
EXTENSIONS = {
    "long": "csv",
    "mrmcaov": "csv",
    "rjafroc": "xlsx",
    "imrmc": "imrmc",
    "json": "json",
    "html": "html",
}


class ExportError(ValueError):
    """The study's data cannot be written in the asked format (the message says why)."""


@dataclass(frozen=True)
class Export:
    """An export: its chunks (str or bytes), content type and file name."""

    chunks: Iterable[str | bytes]
    content_type: str
    filename: str


def long_csv_chunks(
    rows: Iterable[tuple[Any, ...]], *, rows_per_chunk: int = 2000
) -> Iterator[str]:
    """The long reads CSV, header first, ``rows_per_chunk`` rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LONG_COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([neutralize(v) for v in row])
        n += 1
        if n == rows_per_chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            n = 0
    yield buffer.getvalue()


def roc_frame(long: pd.DataFrame, finding: str) -> pd.DataFrame:
    """One finding type's ``reader,treatment,case,truth,rating`` (cases with truth only)."""
    if long.empty:
        raise ExportError("the study has no submitted reads yet")
    findings = list(pd.unique(long["finding"]))
    if finding not in findings:
        raise ExportError(f"no reads of finding type {finding!r}; have {sorted(findings)}")
    usable = long[(long["finding"] == finding) & long["truth"].notna()].copy()
    if usable.empty:
        raise ExportError(f"no reads of {finding!r} on cases with ground truth")
    usable["truth"] = usable["truth"].astype("int64")
    try:
        frame = mrmc_frame(check_long_frame(usable), finding)
    except ValueError as error:
        raise ExportError(str(error)) from None
    if (frame["rating"] % 1 == 0).all():
        frame["rating"] = frame["rating"].astype("int64")
    return frame


def mrmcaov_csv(frame: pd.DataFrame) -> str:
    """MRMCaov's input: ``reader,treatment,case,truth,rating`` (the VanDyke data's shape)."""
    out = frame[["reader", "treatment", "case", "truth", "rating"]].copy()
    for col in ("reader", "treatment", "case"):
        out[col] = out[col].map(neutralize)
    return str(out.to_csv(index=False, lineterminator="\n"))


def _case_numbers(frame: pd.DataFrame) -> dict[str, int]:
    return {case: k for k, case in enumerate(sorted(pd.unique(frame["case"])), start=1)}


def rjafroc_workbook(frame: pd.DataFrame, *, title: str) -> bytes:
    """A JAFROC Excel workbook of ROC data, as RJafroc's ``DfReadDataFile`` reads it.

    Sheets ``TRUTH`` (CaseID, LesionID, Weight: LesionID 0 and weight 0 for a normal case,
    lesion 1 with weight 1 for an abnormal one), ``NL`` (ReaderID, ModalityID, CaseID,
    NL_Rating: the ratings of normal cases) and ``LL`` (ReaderID, ModalityID, CaseID, LesionID,
    LL_Rating: the ratings of abnormal cases), and ``CASES`` mapping the integer CaseID that
    JAFROC needs to the platform's case ID. Modality = arm.
    """
    from openpyxl import Workbook

    numbers = _case_numbers(frame)
    truth = frame.drop_duplicates("case").set_index("case")["truth"]
    wb = Workbook()
    sheet = wb.active
    sheet.title = "TRUTH"
    sheet.append(["CaseID", "LesionID", "Weight"])
    for case, k in numbers.items():
        positive = int(truth[case]) == 1
        sheet.append([k, 1 if positive else 0, 1 if positive else 0])
    nl = wb.create_sheet("NL")
    nl.append(["ReaderID", "ModalityID", "CaseID", "NL_Rating"])
    ll = wb.create_sheet("LL")
    ll.append(["ReaderID", "ModalityID", "CaseID", "LesionID", "LL_Rating"])
    for reader, treatment, case, t, rating in frame[
        ["reader", "treatment", "case", "truth", "rating"]
    ].itertuples(index=False):
        ids = [neutralize(str(reader)), neutralize(str(treatment)), numbers[case]]
        if int(t) == 1:
            ll.append([*ids, 1, rating.item() if hasattr(rating, "item") else rating])
        else:
            nl.append([*ids, rating.item() if hasattr(rating, "item") else rating])
    cases = wb.create_sheet("CASES")
    cases.append(["CaseID", "case"])
    for case, k in numbers.items():
        cases.append([k, neutralize(str(case))])
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # text, never a formula
    wb.properties.title = title
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _imrmc_id(value: Any, what: str) -> str:
    text = str(value)
    if not text or any(ch in text for ch in ",\r\n") or text != text.strip():
        raise ExportError(
            f"{what} {text!r} cannot be written to iMRMC: IDs are comma-separated, one row a line"
        )
    return text


def imrmc_text(frame: pd.DataFrame, *, study: str, finding: str) -> str:
    """iMRMC's input file: a study description, the N0/N1/NR/NM lines, then the data.

    After ``BEGIN DATA:``, one ``readerID,caseID,modalityID,score`` row per rating and one truth
    row per case (reader ``-1``, modality ``0``, score 0 or 1), as iMRMC's user manual (4.1.1
    Study Raw Data) describes.
    """
    truth = frame.drop_duplicates("case").set_index("case")["truth"]
    readers = [_imrmc_id(r, "reader") for r in pd.unique(frame["reader"])]
    if "-1" in readers:
        raise ExportError("reader ID '-1' is reserved for truth rows in iMRMC")
    arms = [_imrmc_id(a, "arm") for a in pd.unique(frame["treatment"])]
    if "0" in arms:
        raise ExportError("modality ID '0' is reserved for truth rows in iMRMC")
    lines = [
        "iMRMC input exported by the reader-study platform",
        f"study {study}, finding type {finding}; "
        "score = the reader's probability that the finding is present, 0-100",
        "",
        f"NR: {len(readers)}",
        f"N0: {int((truth == 0).sum())}",
        f"N1: {int((truth == 1).sum())}",
        f"NM: {len(arms)}",
        "",
        "BEGIN DATA:",
    ]
    lines += [f"-1,{_imrmc_id(case, 'case')},0,{int(t)}" for case, t in truth.items()]
    lines += [
        f"{r},{c},{t},{rating}"
        for r, t, c, rating in frame[["reader", "treatment", "case", "rating"]].itertuples(
            index=False
        )
    ]
    return "\n".join(lines) + "\n"


def build_export(
    study: Study, fmt: str, *, finding: str | None = None, analysis: dict[str, Any] | None = None
) -> Export:
    """The export of ``study`` in ``fmt``; ``finding`` for the per-finding formats.

    ``analysis`` is the cached analysis result (for ``json`` and ``html``). Raises
    :class:`ExportError` with a message naming what is wrong.
    """
    from studyplatform.dashboard.selectors import iter_long_rows, long_reads_frame

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    base = f"{study.slug}-{fmt}"
    if fmt == "long":
        return Export(
            long_csv_chunks(iter_long_rows(study)), CONTENT_TYPES[fmt], f"{study.slug}-long.csv"
        )
    if fmt in PER_FINDING:
        codes = list(study.finding_types.values_list("code", flat=True))
        if finding is None:
            if len(codes) != 1:
                raise ExportError(
                    f"format {fmt} holds one finding type: choose one of {', '.join(codes)}"
                )
            finding = codes[0]
        elif finding not in codes:
            raise ExportError(f"study {study.slug} has no finding type {finding!r}")
        frame = roc_frame(long_reads_frame(study), finding)
        name = f"{base}-{finding}.{EXTENSIONS[fmt]}"
        if fmt == "mrmcaov":
            return Export([mrmcaov_csv(frame)], CONTENT_TYPES[fmt], name)
        if fmt == "rjafroc":
            body = rjafroc_workbook(frame, title=f"{study.slug} {finding}")
            return Export([body], CONTENT_TYPES[fmt], name)
        return Export(
            [imrmc_text(frame, study=study.slug, finding=finding)], CONTENT_TYPES[fmt], name
        )
    if analysis is None:
        raise ExportError("the analysis is not ready yet")
    if fmt == "json":
        data = {k: v for k, v in analysis.items() if k != "figures"}
        text = json.dumps(data, allow_nan=False, indent=1)
        return Export([text], CONTENT_TYPES[fmt], f"{base}.json")
    from studyplatform.dashboard.report import render_report

    page = render_report(study=study, payload=analysis, standalone=True)
    return Export([page], CONTENT_TYPES[fmt], f"{study.slug}-report.html")
