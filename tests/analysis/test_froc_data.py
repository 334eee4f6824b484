"""FROC data: building it from marks, and RJafroc's Excel workbook both ways."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from analysis.froc import FrocData, froc_data, read_workbook, workbook_bytes

TRUTH = pd.DataFrame(
    {
        "case": ["n1", "n2", "a1", "a1", "a2"],
        "lesion": ["0", "0", "L1", "L2", "L1"],
        "weight": [0, 0, 0.3, 0.7, 0],
    }
)
NL = pd.DataFrame(
    {
        "reader": ["r1", "r1", "r1", "r2", "r2"],
        "treatment": ["A", "A", "B", "A", "B"],
        "case": ["n1", "n1", "a1", "n2", "a2"],
        "rating": [1.5, 2.0, 3.25, 1.0, 4.0],
    }
)
LL = pd.DataFrame(
    {
        "reader": ["r1", "r2", "r2"],
        "treatment": ["A", "A", "B"],
        "case": ["a1", "a1", "a2"],
        "lesion": ["L2", "L1", "L1"],
        "rating": [5.0, 4.5, 3.0],
    }
)


def _small() -> FrocData:
    return froc_data(TRUTH, NL, LL)


def _same(a: FrocData, b: FrocData) -> None:
    assert (a.treatments, a.readers, a.cases, a.n_normal, a.lesion_ids) == (
        b.treatments,
        b.readers,
        b.cases,
        b.n_normal,
        b.lesion_ids,
    )
    # Weights within 1% of summing to 1 are rescaled on reading: equal to the last bit or two.
    np.testing.assert_allclose(a.lesion_weights, b.lesion_weights, rtol=1e-14)
    np.testing.assert_array_equal(np.sort(a.nl, axis=-1), np.sort(b.nl, axis=-1))
    np.testing.assert_array_equal(a.ll, b.ll)


def test_froc_data_puts_marks_in_rjafroc_arrays() -> None:
    data = _small()
    assert data.treatments == ("A", "B")
    assert data.readers == ("r1", "r2")
    assert data.cases == ("n1", "n2", "a1", "a2")
    assert data.n_normal == 2
    assert data.lesion_ids == (("L1", "L2"), ("L1",))
    np.testing.assert_array_equal(data.lesion_weights, [[0.3, 0.7], [1.0, np.nan]])
    assert data.nl.shape == (2, 2, 4, 2)
    assert data.nl[0, 0, 0].tolist() == [1.5, 2.0]
    assert data.nl[1, 0, 2].tolist() == [3.25, -np.inf]
    assert data.ll.shape == (2, 2, 2, 2)
    assert data.ll[0, 0, 0].tolist() == [-np.inf, 5.0]
    assert data.ll[1, 1, 1, 0] == 3.0


def test_zero_weights_mean_equal_weights_as_rjafroc() -> None:
    truth = TRUTH.assign(weight=0)
    assert froc_data(truth, NL, LL).lesion_weights[0].tolist() == [0.5, 0.5]


def test_readers_without_marks_are_added_in_the_given_order() -> None:
    data = froc_data(TRUTH, NL, LL, readers=["r3", "r2"], treatments=["B"])
    assert data.readers == ("r3", "r2", "r1")
    assert data.treatments == ("B", "A")
    assert np.all(data.nl[:, 0] == -np.inf)


@pytest.mark.parametrize(
    ("nl", "ll", "message"),
    [
        (NL.assign(case=["n1", "x", "a1", "n2", "a2"]), LL, "NL row 2: case x is not in the truth"),
        (NL.assign(rating=[1, np.inf, 1, 1, 1]), LL, "NL row 2: rating .*inf.* is not a finite"),
        (NL, LL.assign(lesion=["L2", "L9", "L1"]), "LL row 2: case a1 has no lesion L9"),
        (NL, LL.assign(case=["a1", "n1", "a2"]), "LL row 2: case n1 is a normal case"),
        (NL, pd.concat([LL, LL.iloc[[0]]]), "LL row 4: reader r1 treatment A rated case a1"),
        (NL.drop(columns="rating"), LL, "NL marks lacks column\\(s\\) rating"),
    ],
)
def test_bad_marks_are_refused_naming_the_row(
    nl: pd.DataFrame, ll: pd.DataFrame, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        froc_data(TRUTH, nl, ll)


def test_weights_far_from_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"weights of case a1 sum to 0\.5"):
        froc_data(TRUTH.assign(weight=[0, 0, 0.2, 0.3, 0]), NL, LL)


def test_workbook_round_trip_keeps_every_mark_and_name(tmp_path: Path) -> None:
    data = _small()
    path = tmp_path / "froc.xlsx"
    path.write_bytes(workbook_bytes(data))
    _same(read_workbook(path), data)
    book = load_workbook(path)
    assert book.sheetnames[:3] == ["TRUTH", "NL", "LL"]
    # Names that are not integers are numbered for RJafroc, which reads integer IDs only.
    assert [c.value for c in book["TRUTH"]["A"]][:4] == ["CaseID", 1, 2, 3]


def test_workbook_with_integer_ids_writes_them_unchanged(tmp_path: Path) -> None:
    truth = TRUTH.assign(case=[1, 2, 10, 10, 11], lesion=[0, 0, 1, 2, 1])
    nl = NL.assign(case=[1, 1, 10, 2, 11], reader=[1, 1, 1, 2, 2])
    ll = LL.assign(case=[10, 10, 11], lesion=[2, 1, 1], reader=[1, 2, 2])
    data = froc_data(truth, nl, ll)
    body = workbook_bytes(data)
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == ["TRUTH", "NL", "LL"]
    path = tmp_path / "ids.xlsx"
    path.write_bytes(body)
    _same(read_workbook(path), data)


def test_workbook_with_fp_tp_sheets_is_read_by_position(tmp_path: Path) -> None:
    wb = Workbook()
    truth = wb.active
    truth.title = "TRUTH"
    truth_rows: list[tuple[object, ...]] = [("CaseID", "LesionID", "Weight"), (1, 0, 0), (2, 1, 0)]
    for row in [*truth_rows, (2, 2, 0)]:
        truth.append(row)
    fp = wb.create_sheet("FP")
    fp.append(("ReaderID", "ModalityID", "CaseID", "FP_Rating"))
    fp.append((0, 0, 1, 2.5))
    tp = wb.create_sheet("TP")
    tp.append(("ReaderID", "ModalityID", "CaseID", "LesionID", "TP_Rating"))
    tp.append((0, 0, 2, 2, 4))
    path = tmp_path / "old.xlsx"
    wb.save(path)
    data = read_workbook(path)
    assert data.lesion_ids == (("1", "2"),)
    assert data.ll[0, 0, 0].tolist() == [-np.inf, 4.0]
    assert data.nl[0, 0, 0, 0] == 2.5


def test_workbook_without_ll_sheet_is_refused(tmp_path: Path) -> None:
    book = load_workbook(io.BytesIO(workbook_bytes(_small())))
    del book["LL"]
    path = tmp_path / "bad.xlsx"
    book.save(path)
    with pytest.raises(ValueError, match="the workbook has no sheet LL or TP"):
        read_workbook(path)


def test_rjafroc_dataset_survives_our_workbook_round_trip(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[1] / "data" / "froc" / "dataset06.xlsx"
    data = read_workbook(source)  # written by RJafroc's DfWriteExcelDataFile
    assert (len(data.cases), data.n_normal, data.ll.shape[-1]) == (89, 47, 15)
    path = tmp_path / "again.xlsx"
    path.write_bytes(workbook_bytes(data))
    _same(read_workbook(path), data)


def test_workbook_declaring_a_dtd_is_refused(tmp_path: Path) -> None:
    import zipfile

    source = io.BytesIO(workbook_bytes(_small()))
    path = tmp_path / "dtd.xlsx"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + data
            dst.writestr(item, data)
    with pytest.raises(ValueError, match="declares a DTD"):
        read_workbook(path)
