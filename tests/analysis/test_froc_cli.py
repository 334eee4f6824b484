"""``python -m analysis froc``: RJafroc's workbook in, the mrmc JSON keys out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from analysis.cli import main
from analysis.froc import read_workbook, workbook_bytes
from tests.analysis.test_froc_analysis import DATA, GOLDEN

WORKBOOK = str(DATA / "froc" / "dataset01.xlsx")


def _editable_copy() -> Workbook:
    """dataset01 as the project writes it (openpyxl cannot re-save RJafroc's own file)."""
    return load_workbook(io.BytesIO(workbook_bytes(read_workbook(WORKBOOK))))


def test_froc_json_has_the_mrmc_keys_and_rjafroc_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["froc", WORKBOOK, "--fom", "wAFROC", "--method", "OR", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    golden = GOLDEN["dataset01"]["st"]["wAFROC/OR/RRRC"]
    assert out["method"] == "OR"
    assert out["metric"] == "wAFROC"
    assert (out["n_positive"], out["n_negative"], out["n_cases"]) == (89, 96, 185)
    assert out["reader_value"][0] == {
        "treatment": "BT",
        "reader": "1",
        "value": pytest.approx(GOLDEN["dataset01"]["fom"]["wAFROC"]["values"][0][0], rel=1e-9),
    }
    assert out["global_test"]["p_value"] == pytest.approx(
        golden["FTests"]["Treatment"]["p"], rel=1e-6
    )
    assert out["differences"][0]["pair"] == "BT - DM"
    assert set(out["single_treatment"]) == {"BT", "DM"}


def test_froc_dbm_json_carries_the_reader_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["froc", WORKBOOK, "--fom", "HrSe", "--method", "DBM", "--factors", "FRRC", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    golden = GOLDEN["dataset01"]["st"]["HrSe/DBM/FRRC"]
    assert out["method"] == "DBM"
    assert len(out["reader_value"]) == 10
    assert out["global_test"]["df2"] == pytest.approx(golden["FTests"]["Error"]["DF"], rel=1e-9)


def test_froc_text_report_names_the_figure_of_merit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["froc", WORKBOOK, "--fom", "MaxNLF"]) == 0
    assert "metric MaxNLF" in capsys.readouterr().out


def test_unknown_figure_of_merit_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["froc", WORKBOOK, "--fom", "FROC"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_workbook_without_ll_sheet_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = _editable_copy()
    del book["LL"]
    path = tmp_path / "no_ll.xlsx"
    book.save(path)
    assert main(["froc", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no sheet LL or TP" in err


def test_bad_rating_row_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = _editable_copy()
    book["NL"]["D3"] = "high"
    path = tmp_path / "bad_rating.xlsx"
    book.save(path)
    assert main(["froc", str(path)]) == 2
    assert "NL row 2: rating 'high' is not a finite number" in capsys.readouterr().err


def test_not_a_workbook_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "marks.xlsx"
    path.write_text("reader,case\n")
    assert main(["froc", str(path)]) == 2
    assert "cannot read" in capsys.readouterr().err
