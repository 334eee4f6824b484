"""Tests of analysis.report and the ``report`` subcommand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.missed import missed_findings
from analysis.mrmc import imrmc_analysis, or_analysis
from analysis.report import (
    ALL_AVAILABLE,
    ALL_READS,
    COMPLETE_CASE,
    analyze_long_frame,
    complete_readers,
    mrmc_frame,
    read_long_csv,
    report_dict,
)
from analysis.report_html import render_html, write_html
from analysis.sections import sections
from analysis.simulate import simulate_long_frame
from analysis.study import analyze_file
from tests.report_tables import table_texts


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(9, n_readers=4, n_cases=40)


def test_report_dict_holds_every_analysis_and_is_strict_json(long: pd.DataFrame) -> None:
    d = report_dict(long)
    text = json.dumps(d, allow_nan=False)
    assert set(d) >= {"mrmc", "missed", "agreement", "standalone", "reading_time", "notes"}
    assert set(d["mrmc"]) == {"pneumothorax", "nodule"}
    assert d["n_readers"] == 4 and d["n_cases"] == 40 and d["notes"] == []
    assert d["missed_all_available"] is None  # every reader complete: nothing more to say
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
    path = write_html(analyze_file(long), tmp_path / "r.html")
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


def test_a_reader_missing_an_arm_is_left_out_of_the_complete_case_analysis_by_name(
    long: pd.DataFrame,
) -> None:
    partial = long[~((long["reader"] == "reader-1") & (long["arm"] == "assisted"))]
    res = analyze_long_frame(partial)
    assert set(res.mrmc) == {"pneumothorax", "nodule"}
    assert res.readers.included == ("reader-2", "reader-3", "reader-4")
    assert res.readers.excluded == (
        ("reader-1", "has not finished both arms (40 cases read unassisted, 0 assisted, "
                     "0 in both arms)"),
    )  # fmt: skip
    assert any("left out: reader-1 has not finished both arms" in n for n in res.notes)
    ref = or_analysis(mrmc_frame(long[long["reader"] != "reader-1"], "nodule"))
    assert res.mrmc["nodule"].to_dict() == ref.to_dict()
    assert res.reading_time is not None and res.reading_time.arms[0].n_reads == 4 * 40


def _part_way(long: pd.DataFrame, reader: str, n_cases: int) -> pd.DataFrame:
    """``reader`` has read only their first ``n_cases`` reads (in reading order): part-way."""
    reads = long[long["reader"] == reader].drop_duplicates(["case", "arm"])
    done = reads.sort_values("started_at").head(n_cases)[["case", "arm"]]
    mine = long["reader"] == reader
    keep = long[mine].merge(done, on=["case", "arm"])
    return pd.concat([long[~mine], keep], ignore_index=True)


def test_a_reader_part_way_leaves_the_primary_analysis_answering(long: pd.DataFrame) -> None:
    partial = _part_way(long, "reader-1", 12)
    assert complete_readers(partial).included == ("reader-2", "reader-3", "reader-4")
    d = analyze_file(partial)["analysis"]
    assert d["label"] == COMPLETE_CASE and d["readers"]["excluded"][0]["reader"] == "reader-1"
    assert set(d["mrmc"]) == {"pneumothorax", "nodule"}
    assert all(fm["missed"]["or_difference"] is not None for fm in d["missed"]["findings"])
    assert all(fs["versus_readers"] is not None for fs in d["standalone"]["findings"])
    assert {r["rater_a"] for r in d["agreement"] if r["comparison"] == "reader-truth"} == {
        "reader-2", "reader-3", "reader-4"
    }  # fmt: skip
    every_read = d["all_available"]
    assert every_read["label"] == ALL_AVAILABLE
    for finding in ("pneumothorax", "nodule"):
        frame = mrmc_frame(partial, finding)
        if frame[frame["reader"] == "reader-1"]["truth"].nunique() == 2:
            assert every_read["mrmc"][finding] == imrmc_analysis(frame).to_dict()
        else:
            assert "reader-1 left out of the all-available-data" in every_read["notes"][finding][0]
        assert every_read["mrmc"][finding]["n_readers"] >= 3


def test_no_reader_finished_is_said_not_raised(long: pd.DataFrame) -> None:
    first_session = long[long["session"] == 1]
    d = analyze_file(first_session)["analysis"]
    assert d["mrmc"] == {} and d["missed"] is None and d["readers"]["included"] == []
    assert "no reader has finished both arms yet" in " ".join(d["notes"])
    assert d["mrmc_notes"]["nodule"] == ["complete-case analysis not possible: no complete reader"]
    assert d["standalone"]["findings"][0]["overall"]["auc"] is not None
    every_read = d["missed_all_available"]
    assert every_read["label"] == ALL_READS
    assert every_read["findings"] == missed_findings(first_session).to_dict()["findings"]
    for finding in ("pneumothorax", "nodule"):  # every read: the U-statistic analysis answers
        frame = mrmc_frame(first_session, finding)
        assert d["all_available"]["mrmc"][finding] == imrmc_analysis(frame).to_dict()


_CI = re.compile(r"^(-?\d+\.\d+) \((-?\d+\.\d+), (-?\d+\.\d+)\)")


def test_every_rendered_estimate_lies_inside_its_rendered_interval_and_names_its_method(
    long: pd.DataFrame,
) -> None:
    payload = analyze_file(_part_way(long, "reader-1", 5))
    checked = 0
    for section in sections(payload):
        for table in section.tables:
            for row in table.rows:
                for cell in row:
                    m = _CI.match(cell.removeprefix("OR "))
                    if m:
                        est, lo, hi = (float(x) for x in m.groups())
                        assert lo <= est <= hi, (section.key, row)
                        checked += 1
            if "estimate; interval" in table.header:
                col, by = table.header.index("estimate; interval"), table.header.index("analysis")
                methods = {(r[by], r[col]) for r in table.rows}
                assert methods == {
                    (COMPLETE_CASE, "reader-averaged; OR single-treatment interval (RRRC, case "
                                    "jackknife)"),
                    (ALL_READS, "pooled; Wilson interval on the case-clustered effective sample "
                                "size (Korn-Graubard)"),
                }  # fmt: skip
    assert checked > 50


def test_identical_ratings_are_noted_in_the_json_and_the_table(long: pd.DataFrame) -> None:
    flat = long.assign(confidence=50)
    payload = analyze_file(flat)
    notes = payload["analysis"]["mrmc_notes"]["nodule"]
    assert "every rating is 50, so every AUC is 0.5" in notes[0]
    assert notes[0] in payload["analysis"]["notes"]
    mrmc = next(s for s in sections(payload) if s.key == "mrmc").tables[0]
    row = next(r for r in mrmc.rows if r[0] == "nodule" and r[1] == COMPLETE_CASE)
    assert row[-1].startswith("nodule: every rating is 50")


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
    assert set(d) == {"protocol", "analysis", "drift", "thresholds", "behaviour"}
    assert d["analysis"]["missed"]["findings"][-1]["findings_pooled"] == ["nodule"]
    assert d["thresholds"] == {"pneumothorax": 0.5, "nodule": 0.5}
    assert set(d["drift"]) >= {"reference", "rows"}
    assert set(d["drift"]["rows"][0]) >= {"finding", "site", "n", "ks_p_value", "psi", "level"}
    assert '<section id="section-drift">' in out.read_text()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="confidence"), "missing column"),
        (lambda d: d[["study"]], "missing column(s): reader, case, arm, finding, truth"),
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


def test_the_html_file_shows_the_tables_of_the_sections(long: pd.DataFrame) -> None:
    payload = analyze_file(long)
    page = render_html(payload)
    expected = []
    for section in sections(payload):
        assert f'<section id="section-{section.key}">' in page
        expected += [[t.header, *t.rows] for t in section.tables]
    assert table_texts(page) == expected


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


def test_the_command_line_validates_the_frame_once(
    long: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.longreads
    import analysis.report
    import analysis.study

    calls = []
    check = analysis.report.check_long_frame

    def counted(frame: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(frame))
        return check(frame)

    monkeypatch.setattr(analysis.longreads, "check_long_frame", counted)
    monkeypatch.setattr(analysis.report, "check_long_frame", counted)
    monkeypatch.setattr(analysis.study, "check_long_frame", counted)
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    assert main(["report", str(csv), "--out", str(tmp_path / "r.html")]) == 0
    assert calls == [len(long)]


def test_zero_variance_is_noted_in_the_json(long: pd.DataFrame) -> None:
    # every reader separates the truth perfectly: every AUC is 1 and every variance 0
    d = analyze_file(long.assign(confidence=long["truth"] * 100))["analysis"]
    st = d["mrmc"]["nodule"]["single_treatment"]["assisted"]
    assert st["ci_lower"] == st["ci_upper"] == 1.0
    assert d["mrmc_notes"]["nodule"] == [
        "nodule: zero variance for the AUC unassisted, AUC assisted, difference "
        "unassisted - assisted: the interval has zero width and carries no information"
    ]


def test_drift_is_shown_as_a_test_with_the_psi_interval_apart(long: pd.DataFrame) -> None:
    payload = analyze_file(long, alpha=0.05)
    [table] = next(s for s in sections(payload) if s.key == "drift").tables
    rows = [dict(zip(table.header, r, strict=True)) for r in table.rows]
    by_site = {(r["finding"], r["stratum"], r["site"]): r for r in payload["drift"]["rows"]}
    assert len(rows) == len(by_site)
    for row in rows:
        raw = by_site[(row["finding"], row["cases"], row["site"])]
        assert row["shift"] == raw["level"]
        if raw["level"] == "reference":
            continue
        assert row["KS p (adjusted)"] == ("< 0.0001" if raw["ks_p_adjusted"] < 1e-4
                                          else f"{raw['ks_p_adjusted']:.4f}")  # fmt: skip
        assert row["PSI bootstrap interval"] == (
            f"{raw['psi_ci_lower']:.3f}\u2013{raw['psi_ci_upper']:.3f}"
        )
        assert raw["level"] == "stable" or raw["ks_p_adjusted"] <= 0.05


def test_padded_or_categorical_ids_give_the_analysis_of_plain_text(long: pd.DataFrame) -> None:
    # The validated frame keeps IDs as categoricals of their stripped text: blanks around an
    # ID, a categorical with unsorted or unused categories, or both, change nothing.
    plain = report_dict(long)
    padded = long.assign(**{c: " " + long[c].astype(str) + "  " for c in ("reader", "case")})
    shuffled = {
        c: pd.Categorical(
            long[c].astype(str),
            categories=[*sorted(set(long[c].astype(str)), reverse=True), "never-read"],
        )
        for c in ("reader", "case", "arm", "finding")
    }
    assert report_dict(padded) == plain
    assert report_dict(long.assign(**shuffled)) == plain
    assert report_dict(padded.assign(arm=shuffled["arm"])) == plain


def test_a_blank_id_names_its_data_row(long: pd.DataFrame) -> None:
    blank = long.assign(case=long["case"].astype(str))
    blank.loc[blank.index[3], "case"] = "   "
    with pytest.raises(ValueError, match=r"^empty case in data row 4$"):
        analyze_long_frame(blank)
    categorical = blank.assign(case=blank["case"].astype("category"))
    with pytest.raises(ValueError, match=r"^empty case in data row 4$"):
        analyze_long_frame(categorical)
