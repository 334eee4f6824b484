"""FROC data: the marks and lesions of a free-response study, and RJafroc's Excel workbook.

A free-response (FROC) reader marks any number of suspicious locations per case and rates each.
A mark on a lesion is a lesion localization (LL) of that lesion, any other mark a non-lesion
localization (NL). :class:`FrocData` holds them in the arrays of RJafroc's dataset object
(Chakraborty 2017, ch. 5; RJafroc 2.1.3 ``DfReadDataFile``): ``nl[i, j, k, :]`` the NL ratings of
treatment ``i``, reader ``j`` on case ``k`` (normal cases first), ``ll[i, j, k2, l]`` the rating of
lesion ``l`` of abnormal case ``k2``, ``-inf`` where there is no mark.

RJafroc's workbook (its "JAFROC" format, read by ``DfReadDataFile(file)``) has three sheets:
``TRUTH`` (CaseID, LesionID, Weight: LesionID 0 marks a normal case; weights all 0 on a case mean
equal weights), ``NL`` (ReaderID, ModalityID, CaseID, NL_Rating) and ``LL`` (ReaderID, ModalityID,
CaseID, LesionID, LL_Rating). RJafroc also accepts the older names ``FP`` and ``TP`` and reads the
columns by position; so does :func:`read_workbook`. RJafroc's reader needs integer case, lesion
and reader IDs; :func:`workbook_bytes` numbers other IDs 1, 2, ... and keeps the names in sheets
``CASES``, ``LESIONS`` and ``READERS``, which :func:`read_workbook` uses to restore them.

Deliberate differences from RJafroc's reader: treatments and readers keep the order of first
appearance (RJafroc 2.1.3 sorts modality IDs as text and reader IDs as integers; the order changes
nothing but the direction of the named differences); a mark on an unknown case or lesion, a
duplicated LL and a rating that is not a finite number are errors naming the row (RJafroc drops
some of them silently: an LL whose lesion row is missing from its truth table structure is
skipped). Lesion weights are normalized when their sum is within 0.99..1.01, an error otherwise,
as RJafroc.

References
----------
Chakraborty DP (2017). Observer Performance Methods for Diagnostic Imaging: Foundations, Modeling,
and Applications with R-Based Examples. CRC Press. doi:10.1201/9781351228190
Chakraborty DP, Berbaum KS (2004). Observer studies involving detection and localization: modeling,
analysis, and validation. Medical Physics 31(8):2313-2330. doi:10.1118/1.1769352
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analysis.froc.xlsx import Cell, read_sheets

FloatArray = NDArray[np.float64]

NORMAL_LESION = "0"


@dataclass(frozen=True)
class FrocData:
    """RJafroc's FROC dataset: the marks and lesions of every treatment x reader x case.

    Attributes
    ----------
    treatments, readers
        IDs as strings (``I`` treatments, ``J`` readers).
    cases
        Case IDs: the ``K1`` normal (lesion-free) cases first, then the ``K2`` abnormal ones.
    n_normal
        ``K1``.
    lesion_ids
        Per abnormal case (``K2`` tuples), its lesion IDs.
    lesion_weights
        ``(K2, Lmax)``: the weights of each abnormal case's lesions (summing to 1), NaN-padded.
    nl
        ``(I, J, K, max_nl)`` NL ratings, ``-inf`` where there is no mark.
    ll
        ``(I, J, K2, Lmax)`` LL ratings, ``-inf`` where the lesion was not marked.
    """

    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    n_normal: int
    lesion_ids: tuple[tuple[str, ...], ...]
    lesion_weights: FloatArray
    nl: FloatArray
    ll: FloatArray

    @property
    def n_abnormal(self) -> int:
        """``K2``, the number of cases with at least one lesion."""
        return len(self.cases) - self.n_normal

    @property
    def lesions_per_case(self) -> NDArray[np.int64]:
        """``(K2,)`` number of lesions of each abnormal case."""
        return np.array([len(ids) for ids in self.lesion_ids], dtype=np.int64)


def _id(value: Any) -> str:
    """An ID as text: integral numbers without a decimal point, as RJafroc's integer IDs."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def _id_key(value: str) -> tuple[int, float, str]:
    """Sort integral IDs by value before other IDs by text, as RJafroc sorts its case IDs."""
    try:
        return (0, float(int(value)), "")
    except ValueError:
        return (1, 0.0, value)


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _first_appearance(*columns: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for column in columns:
        for value in column:
            seen.setdefault(value, None)
    return list(seen)


def _ratings(frame: pd.DataFrame, what: str) -> FloatArray:
    values = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{what} row {row + 1}: rating {frame['rating'].iloc[row]!r} is not a finite number"
        )
    return values


def _truth_tables(
    truth: pd.DataFrame,
) -> tuple[list[str], list[str], list[list[str]], list[list[float]]]:
    """Normal cases, abnormal cases, and per abnormal case its lesion IDs and weights."""
    _require(truth, ("case", "lesion"), "truth")
    cases = [_id(c) for c in truth["case"]]
    lesions = [_id(x) for x in truth["lesion"]]
    if "weight" in truth.columns:
        weights = pd.to_numeric(truth["weight"], errors="coerce").fillna(0.0).tolist()
    else:
        weights = [0.0] * len(cases)
    per_case: dict[str, dict[str, float]] = {}
    for row, (case, lesion, weight) in enumerate(zip(cases, lesions, weights, strict=True)):
        if not case or not lesion:
            raise ValueError(f"truth row {row + 1}: empty case or lesion ID")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"truth row {row + 1}: weight {weight!r} is not a number >= 0")
        entry = per_case.setdefault(case, {})
        if lesion in entry:
            raise ValueError(f"truth row {row + 1}: case {case} lesion {lesion} appears twice")
        entry[lesion] = float(weight)
    normal, abnormal, lesion_ids, lesion_weights = [], [], [], []
    for case in sorted(per_case, key=_id_key):
        entry = per_case[case]
        if NORMAL_LESION in entry:
            if len(entry) > 1:
                raise ValueError(
                    f"truth: case {case} has lesion 0 (a normal case) and other lesions"
                )
            normal.append(case)
            continue
        ids = sorted(entry, key=_id_key)
        w = np.array([entry[x] for x in ids])
        if np.all(w == 0):
            w = np.full(len(ids), 1.0 / len(ids))
        else:
            total = float(w.sum())
            # RJafroc 2.1.3 rescales sums within 1% of 1 and refuses the others.
            if not 0.99 <= total <= 1.01:
                raise ValueError(
                    f"truth: the lesion weights of case {case} sum to {total:g}, not 1"
                )
            if total != 1.0:
                w = w / total
        abnormal.append(case)
        lesion_ids.append(ids)
        lesion_weights.append(w.tolist())
    if not abnormal:
        raise ValueError("truth has no abnormal case (a case with a lesion other than 0)")
    return normal, abnormal, lesion_ids, lesion_weights


def _ordered(found: list[str], given: Sequence[str] | None) -> tuple[str, ...]:
    if given is None:
        return tuple(found)
    listed = [_id(x) for x in given]
    return tuple(_first_appearance(listed, found))


def froc_data(
    truth: pd.DataFrame,
    nl: pd.DataFrame,
    ll: pd.DataFrame,
    *,
    readers: Sequence[str] | None = None,
    treatments: Sequence[str] | None = None,
) -> FrocData:
    """Build a :class:`FrocData` from the truth table and the NL and LL marks.

    Parameters
    ----------
    truth
        Columns ``case``, ``lesion`` and optionally ``weight``: one row per lesion, and one row
        with lesion ``"0"`` per normal case (RJafroc's TRUTH sheet). Weights all 0 or missing on a
        case mean equal weights, as RJafroc.
    nl
        Columns ``reader``, ``treatment``, ``case``, ``rating``: one row per non-lesion mark.
    ll
        Columns ``reader``, ``treatment``, ``case``, ``lesion``, ``rating``: one row per marked
        lesion (at most one per reader, treatment and lesion).
    readers, treatments
        Optional lists that fix the order and add readers or treatments without any mark; the
        others found in the marks follow in order of first appearance.

    Raises
    ------
    ValueError
        Naming the row: a missing column, a mark on a case not in the truth, an LL on an unknown
        lesion or on a normal case, a duplicated LL, a rating that is not a finite number.
    """
    normal, abnormal, lesion_ids, weights = _truth_tables(truth)
    _require(nl, ("reader", "treatment", "case", "rating"), "NL marks")
    _require(ll, ("reader", "treatment", "case", "lesion", "rating"), "LL marks")
    nl_reader = [_id(x) for x in nl["reader"]]
    nl_treatment = [_id(x) for x in nl["treatment"]]
    nl_case = [_id(x) for x in nl["case"]]
    ll_reader = [_id(x) for x in ll["reader"]]
    ll_treatment = [_id(x) for x in ll["treatment"]]
    ll_case = [_id(x) for x in ll["case"]]
    ll_lesion = [_id(x) for x in ll["lesion"]]
    nl_rating = _ratings(nl, "NL")
    ll_rating = _ratings(ll, "LL")

    trt = _ordered(_first_appearance(nl_treatment, ll_treatment), treatments)
    rdr = _ordered(_first_appearance(nl_reader, ll_reader), readers)
    if not trt or not rdr:
        raise ValueError("no marks: at least one treatment and one reader are needed")
    cases = (*normal, *abnormal)
    case_index = {c: k for k, c in enumerate(cases)}
    k1 = len(normal)
    lesion_index = {
        (case, lesion): (k2, el)
        for k2, (case, ids) in enumerate(zip(abnormal, lesion_ids, strict=True))
        for el, lesion in enumerate(ids)
    }
    t_index = {t: i for i, t in enumerate(trt)}
    r_index = {r: j for j, r in enumerate(rdr)}

    for row, case in enumerate(nl_case):
        if case not in case_index:
            raise ValueError(f"NL row {row + 1}: case {case} is not in the truth table")
    i_nl = np.array([t_index[t] for t in nl_treatment], dtype=np.int64)
    j_nl = np.array([r_index[r] for r in nl_reader], dtype=np.int64)
    k_nl = np.array([case_index[c] for c in nl_case], dtype=np.int64)
    # The slot of each NL mark: its rank among the marks of the same treatment, reader and case.
    cell = (i_nl * len(rdr) + j_nl) * len(cases) + k_nl
    slot = pd.Series(cell).groupby(cell).cumcount().to_numpy(dtype=np.int64)
    max_nl = int(slot.max()) + 1 if slot.size else 1
    nl_arr = np.full((len(trt), len(rdr), len(cases), max_nl), -np.inf)
    nl_arr[i_nl, j_nl, k_nl, slot] = nl_rating

    l_max = max(len(ids) for ids in lesion_ids)
    ll_arr = np.full((len(trt), len(rdr), len(abnormal), l_max), -np.inf)
    for row, (t, r, case, lesion) in enumerate(
        zip(ll_treatment, ll_reader, ll_case, ll_lesion, strict=True)
    ):
        if case not in case_index:
            raise ValueError(f"LL row {row + 1}: case {case} is not in the truth table")
        if case_index[case] < k1:
            raise ValueError(f"LL row {row + 1}: case {case} is a normal case (lesion 0)")
        where = lesion_index.get((case, lesion))
        if where is None:
            raise ValueError(f"LL row {row + 1}: case {case} has no lesion {lesion}")
        i, j = t_index[t], r_index[r]
        if np.isfinite(ll_arr[i, j, where[0], where[1]]):
            raise ValueError(
                f"LL row {row + 1}: reader {r} treatment {t} rated case {case} "
                f"lesion {lesion} twice"
            )
        ll_arr[i, j, where[0], where[1]] = ll_rating[row]

    w = np.full((len(abnormal), l_max), np.nan)
    for k2, ws in enumerate(weights):
        w[k2, : len(ws)] = ws
    return FrocData(
        treatments=trt,
        readers=rdr,
        cases=cases,
        n_normal=k1,
        lesion_ids=tuple(tuple(ids) for ids in lesion_ids),
        lesion_weights=w,
        nl=nl_arr,
        ll=ll_arr,
    )


def _frame(rows: list[list[Cell]]) -> pd.DataFrame:
    """A sheet's rows below its header row, columns by position."""
    width = max((len(row) for row in rows), default=0)
    body = [row + [None] * (width - len(row)) for row in rows[1:]]
    return pd.DataFrame(body, columns=range(width), dtype=object)


def _sheet(sheets: dict[str, pd.DataFrame], names: Sequence[str], columns: int) -> pd.DataFrame:
    for name in names:
        if name in sheets:
            frame = sheets[name]
            if frame.shape[1] < columns:
                raise ValueError(f"sheet {name} has {frame.shape[1]} columns, needs {columns}")
            # RJafroc reads the columns by position and drops rows that are blank throughout.
            return frame.iloc[:, :columns].dropna(how="all")
    raise ValueError(f"the workbook has no sheet {' or '.join(names)}")


def _renames(sheets: dict[str, pd.DataFrame], name: str, key: int) -> dict[tuple[str, ...], str]:
    frame = sheets.get(name)
    if frame is None:
        return {}
    return {
        tuple(_id(v) for v in row[:key]): _id(row[key])
        for row in frame.itertuples(index=False, name=None)
    }


def read_workbook(path: str | Path) -> FrocData:
    """Read RJafroc's Excel workbook (sheets TRUTH, NL or FP, LL or TP; RJafroc 2.1.3 format).

    Columns are read by position, as RJafroc: TRUTH CaseID, LesionID, Weight; NL ReaderID,
    ModalityID, CaseID, rating; LL ReaderID, ModalityID, CaseID, LesionID, rating. Optional
    sheets CASES (CaseID, case), LESIONS (CaseID, LesionID, lesion) and READERS (ReaderID, reader)
    restore IDs that :func:`workbook_bytes` numbered.
    """
    sheets = {name.strip().upper(): _frame(rows) for name, rows in read_sheets(path).items()}
    truth = _sheet(sheets, ("TRUTH",), 3)
    nl = _sheet(sheets, ("NL", "FP"), 4)
    ll = _sheet(sheets, ("LL", "TP"), 5)
    truth.columns = pd.Index(["case", "lesion", "weight"])
    nl.columns = pd.Index(["reader", "treatment", "case", "rating"])
    ll.columns = pd.Index(["reader", "treatment", "case", "lesion", "rating"])
    case_names = _renames(sheets, "CASES", 1)
    lesion_names = _renames(sheets, "LESIONS", 2)
    reader_names = _renames(sheets, "READERS", 1)
    if lesion_names:
        truth["lesion"] = [
            lesion_names.get((_id(c), _id(x)), _id(x))
            for c, x in zip(truth["case"], truth["lesion"], strict=True)
        ]
        ll["lesion"] = [
            lesion_names.get((_id(c), _id(x)), _id(x))
            for c, x in zip(ll["case"], ll["lesion"], strict=True)
        ]
    for frame in (truth, nl, ll):
        if case_names:
            frame["case"] = [case_names.get((_id(c),), _id(c)) for c in frame["case"]]
    for frame in (nl, ll):
        if reader_names:
            frame["reader"] = [reader_names.get((_id(r),), _id(r)) for r in frame["reader"]]
    return froc_data(truth, nl, ll)


def _is_int(value: str) -> bool:
    return value.isdigit() or (value.startswith("-") and value[1:].isdigit())


def _numbering(ids: Sequence[str]) -> dict[str, int] | None:
    """``None`` when every ID is already an integer (written as is), else ID -> 1, 2, ..."""
    if all(_is_int(x) for x in ids):
        return None
    return {x: n for n, x in enumerate(ids, start=1)}


def workbook_bytes(data: FrocData) -> bytes:
    """RJafroc's Excel workbook of ``data`` (sheets TRUTH, NL, LL), as ``DfReadDataFile`` reads it.

    Weights are written as stored (RJafroc reads them back unchanged). Case, lesion and reader
    IDs that are not all integers are numbered, with sheets CASES, LESIONS and READERS holding
    the names; text cells are stored as text, never as formulas.
    """
    from openpyxl import Workbook

    case_no = _numbering(data.cases)
    reader_no = _numbering(data.readers)
    all_lesions = [x for ids in data.lesion_ids for x in ids]
    renumber_lesions = not all(_is_int(x) and x != "0" for x in all_lesions)

    def case_cell(case: str) -> int | str:
        return int(case) if case_no is None else case_no[case]

    def reader_cell(reader: str) -> int | str:
        return int(reader) if reader_no is None else reader_no[reader]

    def lesion_cell(k2: int, el: int) -> int:
        return int(data.lesion_ids[k2][el]) if not renumber_lesions else el + 1

    wb = Workbook()
    truth = wb.active
    truth.title = "TRUTH"
    truth.append(["CaseID", "LesionID", "Weight"])
    for case in data.cases[: data.n_normal]:
        truth.append([case_cell(case), 0, 0])
    k1 = data.n_normal
    for k2, ids in enumerate(data.lesion_ids):
        for el in range(len(ids)):
            truth.append(
                [case_cell(data.cases[k1 + k2]), lesion_cell(k2, el), data.lesion_weights[k2, el]]
            )
    nl_sheet = wb.create_sheet("NL")
    nl_sheet.append(["ReaderID", "ModalityID", "CaseID", "NL_Rating"])
    for i, j, k, s in zip(*np.nonzero(np.isfinite(data.nl)), strict=True):
        nl_sheet.append(
            [
                reader_cell(data.readers[j]),
                data.treatments[i],
                case_cell(data.cases[k]),
                float(data.nl[i, j, k, s]),
            ]
        )
    ll_sheet = wb.create_sheet("LL")
    ll_sheet.append(["ReaderID", "ModalityID", "CaseID", "LesionID", "LL_Rating"])
    for i, j, k2, el in zip(*np.nonzero(np.isfinite(data.ll)), strict=True):
        ll_sheet.append(
            [
                reader_cell(data.readers[j]),
                data.treatments[i],
                case_cell(data.cases[k1 + k2]),
                lesion_cell(k2, el),
                float(data.ll[i, j, k2, el]),
            ]
        )
    if case_no is not None:
        sheet = wb.create_sheet("CASES")
        sheet.append(["CaseID", "case"])
        for case, n in case_no.items():
            sheet.append([n, case])
    if renumber_lesions:
        sheet = wb.create_sheet("LESIONS")
        sheet.append(["CaseID", "LesionID", "lesion"])
        for k2, ids in enumerate(data.lesion_ids):
            for el, lesion in enumerate(ids):
                sheet.append([case_cell(data.cases[k1 + k2]), el + 1, lesion])
    if reader_no is not None:
        sheet = wb.create_sheet("READERS")
        sheet.append(["ReaderID", "reader"])
        for reader, n in reader_no.items():
            sheet.append([n, reader])
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # text, never a formula
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
