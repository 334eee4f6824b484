"""Tests of analysis.report and the ``report`` subcommand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.missed import missed_findings
from analysis.mrmc import or_analysis
from analysis.report import (
    analyze_long_frame,
    mrmc_frame,
    read_long_csv,
    report_dict,
    write_report,
)
from analysis.simulate import simulate_long_frame


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(9, n_readers=4, n_cases=40)


def test_report_dict_holds_every_analysis_and_is_strict_json(long: pd.DataFrame) -> None:
    d = report_dict(long)
    text = json.dumps(d, allow_nan=False)
    assert set(d) >= {"mrmc", "missed", "agreement", "standalone", "reading_time", "notes"}
    assert set(d["mrmc"]) == {"pneumothorax", "nodule"}
    assert d["n_readers"] == 4 and d["n_cases"] == 40 and d["notes"] == []
    assert json.loads(text) == d


def test_mrmc_uses_confidence_as_rating_with_unassisted_first(long: pd.DataFrame) -> None:
    res = analyze_long_frame(long)
    frame = mrmc_frame(long, "nodule")
    assert list(pd.unique(frame["treatment"])) == ["unassisted", "assisted"]
    ref = or_analysis(frame)
    assert res.mrmc["nodule"].differences[0].pair == "unassisted - assisted"
    assert res.mrmc["nodule"].global_test.p_value == pytest.approx(ref.global_test.p_value)
    sub = long[(long["finding"] == "nodule") & (long["arm"] == "assisted")]
    assert len(frame[frame["treatment"] == "assisted"]) == len(sub)


def test_missed_results_match_the_missed_module(long: pd.DataFrame) -> None:
    res = analyze_long_frame(long, significant=["nodule"], ai_threshold=0.4)
    ref = missed_findings(long, significant=["nodule"], ai_threshold=0.4)
    assert res.missed.to_dict() == ref.to_dict()


def test_html_is_one_self_contained_file_with_plotly_inlined_once(
    long: pd.DataFrame, tmp_path: Path
) -> None:
    _, path = write_report(long, tmp_path / "r.html")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("plotly.js v") == 1  # the library's banner: inlined exactly once
    assert 'src="http' not in text
    for heading in (
        "MRMC ROC analysis",
        "Missed findings",
        "AI standalone",
        "Agreement",
        "Reading time",
    ):
        assert heading in text  # fmt: skip


def test_design_that_is_not_crossed_is_reported_in_notes(long: pd.DataFrame) -> None:
    partial = long[~((long["reader"] == "reader-1") & (long["arm"] == "assisted"))]
    res = analyze_long_frame(partial)
    assert res.mrmc == {}
    assert any("MRMC ROC analysis of nodule skipped" in n for n in res.notes)


def test_cli_report_writes_html_and_json(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    out = tmp_path / "report.html"
    status = main(["report", str(csv), "--out", str(out), "--json", "--significant", "nodule"])
    assert status == 0
    assert out.stat().st_size > 100_000
    d = json.loads(capsys.readouterr().out)
    assert d["missed"]["findings"][-1]["findings_pooled"] == ["nodule"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="confidence"), "missing column"),
        (lambda d: d.assign(confidence=d["confidence"].astype(object).where(d.index > 3, "high")),
         "non-numeric or out-of-range confidence 'high' in data row 1"),
        (lambda d: d.assign(truth=2), "truth must be 0 or 1"),
        (lambda d: d[d["arm"] == "assisted"], "both arms"),
        (lambda d: d.assign(ai_probability=d["ai_probability"].where(d.index != 6, -3)),
         "ai_probability must be between 0 and 1, got -3 in data row 7"),
        (lambda d: d.assign(ai_probability=d["ai_probability"].where(d.index != 2, 1.7)),
         "ai_probability must be between 0 and 1, got 1.7 in data row 3"),
        (lambda d: d.assign(arm=d["arm"].where(d.index != 4, "second-reader")),
         "unknown arm(s) 'second-reader' (first in data row 5)"),
    ],
)  # fmt: skip
def test_cli_report_bad_input_is_one_line_on_stderr(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, message: str
) -> None:
    csv = tmp_path / "bad.csv"
    mutate(long).to_csv(csv, index=False)
    assert main(["report", str(csv), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (lambda tmp: str(tmp), "is a directory, not a CSV file"),
        (lambda tmp: str(tmp / ("x" * 5000)), "cannot read"),
        (lambda tmp: str(tmp / "absent.csv"), "no such file"),
    ],
)
def test_cli_report_unreadable_input_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path, message: str
) -> None:
    assert main(["report", path(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and len(err) < 400


@pytest.mark.parametrize("threshold", ["7", "0", "1", "-0.2"])
def test_cli_report_refuses_an_ai_threshold_outside_0_1(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold: str
) -> None:
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    argv = ["report", str(csv), "--out", str(tmp_path / "r.html"), "--ai-threshold", threshold]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "AI threshold must be between 0 and 1" in err


def test_read_long_csv_checks_unless_told_not_to(long: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    long.assign(ai_probability=2.0).to_csv(csv, index=False)
    assert len(read_long_csv(csv, validate=False)) == len(long)
    with pytest.raises(ValueError, match="ai_probability must be between 0 and 1"):
        read_long_csv(csv)


def test_cli_report_unwritable_output_is_one_line_on_stderr(
    long: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    assert main(["report", str(csv), "--out", str(tmp_path / "no" / "dir" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


def test_a_significant_type_without_reads_is_left_out_of_the_pool_with_a_note(
    long: pd.DataFrame,
) -> None:
    res = analyze_long_frame(long[long["finding"] == "nodule"], significant=["nodule", "effusion"])
    assert "no reads left out of the pooled missed-finding analysis: effusion" in " ".join(
        res.notes
    )
    pooled = [fm for fm in res.missed.findings if fm.finding == "pooled"]
    assert [fm.findings_pooled for fm in pooled] == [("nodule",)]
    assert set(res.mrmc) == {"nodule"}
