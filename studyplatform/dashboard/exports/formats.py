"""Writers of every export format.

The long CSV streams from the database cursor. The marks CSV has one row per mark of the
effective reads, scored against the truth's lesion locations where the truth has them
(:func:`marks_csv`); the measurements CSV one row per length line drawn. The per-finding
formats (MRMCaov, RJafroc, iMRMC) take one finding type's ROC data, built by the same function
as the report's MRMC analysis (:func:`analysis.report.mrmc_frame`: confidence as the rating,
arms as treatments, ``unassisted`` first), so each of them gives the report's numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.froc import workbook_bytes
from analysis.froc.marks import MarkTables, finding_froc
from analysis.report import LONG_COLUMNS, check_long_frame, mrmc_frame
from studyplatform.dashboard.exports.audit import (
    AuditFilterError,
    audit_csv,
    audit_html,
    parse_object,
)
from studyplatform.dashboard.exports.cells import neutralize
from studyplatform.dashboard.exports.checklist import build_checklist, render_checklist
from studyplatform.dashboard.exports.dicom import write_dicom_zip
from studyplatform.dashboard.exports.measurements import measurements_csv
from studyplatform.dashboard.selectors.telemetry import TELEMETRY_EXPORT_COLUMNS, telemetry_rows
from studyplatform.prereads.selectors import PinnedModelError
from studyplatform.studies.models import Study

FORMATS = (
    "long",
    "marks",
    "measurements",
    "telemetry",
    "mrmcaov",
    "rjafroc",
    "imrmc",
    "json",
    "html",
    "checklist",
    "audit",
    "sr",
)
PER_FINDING = ("mrmcaov", "rjafroc", "imrmc")
CONTENT_TYPES = {
    "long": "text/csv; charset=utf-8",
    "marks": "text/csv; charset=utf-8",
    "measurements": "text/csv; charset=utf-8",
    "telemetry": "text/csv; charset=utf-8",
    "mrmcaov": "text/csv; charset=utf-8",
    "rjafroc": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "imrmc": "text/plain; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "checklist": "text/html; charset=utf-8",
    "audit": "text/csv; charset=utf-8",
    "sr": "application/zip",
}
EXTENSIONS = {
    "long": "csv",
    "marks": "csv",
    "measurements": "csv",
    "telemetry": "csv",
    "mrmcaov": "csv",
    "rjafroc": "xlsx",
    "imrmc": "imrmc",
    "json": "json",
    "html": "html",
    "checklist": "html",
    "audit": "csv",
    "sr": "zip",
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
    rows: Iterable[tuple[Any, ...]],
    *,
    rows_per_chunk: int = 2000,
    header: tuple[str, ...] = LONG_COLUMNS,
) -> Iterator[str]:
    """The long reads CSV (or another ``header``'s rows), ``rows_per_chunk`` rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
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

    The export of a finding type whose truth has no lesion locations: its marks cannot be
    scored, so each case is one pseudo-lesion rated with the read's confidence (the ROC
    paradigm in RJafroc's format). With locations, :func:`froc_workbook` writes the real marks.

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


def froc_workbook(long: pd.DataFrame, marks: MarkTables, finding: str) -> bytes:
    """RJafroc's workbook of one finding type's real marks: lesions, LL and NL marks.

    The marks are scored under the protocol's acceptance rule (:func:`analysis.froc.marks.
    finding_froc`): the TRUTH sheet lists every lesion of the abnormal cases and lesion 0 for
    each normal case, NL and LL hold the marks with their ratings, modality = arm. Case IDs
    are numbered, with their names in sheet CASES (:func:`analysis.froc.workbook_bytes`).
    """
    try:
        froc = finding_froc(
            long, marks.marks, marks.lesions, finding, rule=marks.rule, distance=marks.distance
        )
    except ValueError as error:
        raise ExportError(str(error)) from None
    return workbook_bytes(froc.data)


MARKS_COLUMNS = (
    "study",
    "reader",
    "case",
    "arm",
    "session",
    "finding",
    "mark",
    "image",
    "x",
    "y",
    "rating",
    "lesion",
    "kind",
)


def marks_csv(study: str, long: pd.DataFrame, marks: MarkTables) -> str:
    """One row per mark (MARKS_COLUMNS): where it is, its rating, and what it localized.

    ``kind`` is ``LL`` (the mark localizes ``lesion``) or ``NL`` for the marks of finding types
    whose truth has lesion locations, scored as the FROC analysis scores them; it is empty for
    a mark that is not scored: on a finding type without locations, on a case without truth or
    an abnormal case without locations, or of a read whose call is absent
    (:mod:`analysis.froc.marks`).
    """
    frame = marks.marks.assign(lesion="", kind="")
    key = ["reader", "case", "arm", "session", "finding", "mark"]
    for finding in marks.located_findings():
        try:
            froc = finding_froc(
                long, marks.marks, marks.lesions, finding, rule=marks.rule, distance=marks.distance
            )
        except ValueError:
            continue  # nothing of this finding type can be scored: its kinds stay empty
        scored = froc.scored.marks.rename(columns={"treatment": "arm"})[[*key, "lesion", "kind"]]
        merged = frame[key].merge(scored, on=key, how="left")
        hit = merged["kind"].notna().to_numpy()
        frame.loc[hit, ["lesion", "kind"]] = merged.loc[hit, ["lesion", "kind"]].to_numpy()
    frame.insert(0, "study", study)
    out = frame[list(MARKS_COLUMNS)].copy()
    for column in ("reader", "case", "arm", "finding", "study"):
        out[column] = out[column].astype(str).map(neutralize)
    return str(out.to_csv(index=False, lineterminator="\n"))


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


def _audit_export(study: Study, audit_object: str, *, html: bool) -> Export:
    try:
        selected = parse_object(study, audit_object)
    except AuditFilterError as error:
        raise ExportError(str(error)) from None
    if html:
        return Export(
            [audit_html(study, selected)], CONTENT_TYPES["html"], f"{study.slug}-audit.html"
        )
    return Export(audit_csv(study, selected), CONTENT_TYPES["audit"], f"{study.slug}-audit.csv")


def build_export(
    study: Study,
    fmt: str,
    *,
    finding: str | None = None,
    analysis: dict[str, Any] | None = None,
    audit_object: str = "",
    audit_html: bool = False,
) -> Export:
    """The export of ``study`` in ``fmt``; ``finding`` for the per-finding formats.

    ``analysis`` is the cached analysis result (for ``json`` and ``html``; the ``checklist``
    quotes its estimates when given). ``audit_object`` selects one object's events and
    ``audit_html`` the page instead of the CSV (``audit``). Raises :class:`ExportError` with a
    message naming what is wrong.
    """
    from studyplatform.dashboard.selectors import iter_long_rows, long_reads_frame
    from studyplatform.dashboard.selectors.marks import study_marks

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    base = f"{study.slug}-{fmt}"
    if fmt == "long":
        return Export(
            long_csv_chunks(iter_long_rows(study)), CONTENT_TYPES[fmt], f"{study.slug}-long.csv"
        )
    if fmt == "telemetry":
        chunks = long_csv_chunks(telemetry_rows(study), header=TELEMETRY_EXPORT_COLUMNS)
        return Export(chunks, CONTENT_TYPES[fmt], f"{study.slug}-telemetry.csv")
    if fmt == "marks":
        text = marks_csv(study.slug, long_reads_frame(study), study_marks(study))
        return Export([text], CONTENT_TYPES[fmt], f"{study.slug}-marks.csv")
    if fmt == "measurements":
        text = measurements_csv(study)
        return Export([text], CONTENT_TYPES[fmt], f"{study.slug}-measurements.csv")
    if fmt == "checklist":
        page = render_checklist(build_checklist(study, analysis=analysis))
        return Export([page], CONTENT_TYPES[fmt], f"{study.slug}-checklist.html")
    if fmt == "audit":
        return _audit_export(study, audit_object, html=audit_html)
    if fmt == "sr":
        buffer = io.BytesIO()
        try:
            write_dicom_zip(study, buffer)
        except PinnedModelError as error:
            raise ExportError(str(error)) from None
        return Export([buffer.getvalue()], CONTENT_TYPES[fmt], f"{study.slug}-dicom-sr.zip")
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
        long = long_reads_frame(study)
        frame = roc_frame(long, finding)
        name = f"{base}-{finding}.{EXTENSIONS[fmt]}"
        if fmt == "mrmcaov":
            return Export([mrmcaov_csv(frame)], CONTENT_TYPES[fmt], name)
        if fmt == "rjafroc":
            marks = study_marks(study)
            if finding in marks.located_findings():
                return Export([froc_workbook(long, marks, finding)], CONTENT_TYPES[fmt], name)
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
