"""The report's non-inferiority decision: the protocol's margin on the AUC, complete case."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.mrmc import or_analysis
from analysis.report import mrmc_frame
from analysis.sections import sections
from analysis.simulate import simulate_long_frame
from analysis.study import analyze_file, analyze_study, file_protocol


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(9, n_readers=4, n_cases=40)


@pytest.fixture(scope="module")
def with_margin(long: pd.DataFrame) -> dict:
    return analyze_file(long, ni_margin=0.05)


def _mrmc_tables(payload: dict) -> list:
    return next(s for s in sections(payload) if s.key == "mrmc").tables


def test_margin_adds_the_assisted_minus_unassisted_test_to_each_finding(long, with_margin) -> None:
    payload = with_margin
    assert payload["protocol"]["ni_margin"] == 0.05
    for finding, result in payload["analysis"]["mrmc"].items():
        tests = result["non_inferiority"]
        assert tests["margin"] == 0.05 and tests["reference"] == "unassisted"
        (comparison,) = tests["comparisons"]
        assert comparison["pair"] == "assisted - unassisted"
        direct = or_analysis(mrmc_frame(long, finding), margin=0.05, reference="unassisted")
        expected = direct.non_inferiority.comparisons[0]
        assert comparison["lower"] == pytest.approx(expected.lower, rel=1e-12)
        assert comparison["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
        assert comparison["non_inferior"] is expected.non_inferior


def test_report_table_shows_margin_lower_limit_p_and_decision(with_margin) -> None:
    payload = with_margin
    table = _mrmc_tables(payload)[1]
    assert table.header[:2] == ["finding", "difference"] and table.header[-1] == "decision"
    tests = payload["analysis"]["mrmc"]["nodule"]["non_inferiority"]["comparisons"][0]
    row = next(r for r in table.rows if r[0] == "nodule")
    assert row[1] == "assisted - unassisted" and row[2] == "0.050"
    assert row[4] == f"{tests['lower']:.3f}"
    assert row[-1] == ("non-inferior" if tests["non_inferior"] else "not shown")


def test_without_a_margin_no_test_and_no_table(long) -> None:
    payload = analyze_file(long)
    assert payload["protocol"]["ni_margin"] is None
    assert all("non_inferiority" not in r for r in payload["analysis"]["mrmc"].values())
    assert len(_mrmc_tables(payload)) == 1


def test_a_margin_on_another_primary_endpoint_is_not_applied_to_the_auc(long) -> None:
    thresholds = {"nodule": 0.5, "pneumothorax": 0.5}
    protocol = file_protocol(long, significant=None, thresholds=thresholds, ni_margin=0.05)
    protocol["primary_endpoint"] = "missed"
    payload = analyze_study(long, significant=None, thresholds=thresholds, protocol=protocol)
    assert all("non_inferiority" not in r for r in payload["analysis"]["mrmc"].values())
    assert any("not on the AUC" in note for note in payload["analysis"]["notes"])


def test_cli_report_margin_reaches_json_and_html(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    out = tmp_path / "report.html"
    assert main(["report", str(csv), "--out", str(out), "--margin", "0.05", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    tests = d["analysis"]["mrmc"]["nodule"]["non_inferiority"]
    assert tests["margin"] == 0.05 and tests["comparisons"][0]["pair"] == "assisted - unassisted"
    assert "Non-inferiority of the reader-averaged AUC" in out.read_text()


def test_cli_report_bad_margin_is_a_one_line_error(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    argv = ["report", str(csv), "--out", str(tmp_path / "r.html"), "--margin", "2"]
    assert main(argv) == 2
    assert "margin must be between 0 and 1" in capsys.readouterr().err
