"""The ``python -m analysis`` command line: the DESIGN.md contract and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main

VANDYKE = "tests/data/vandyke.csv"


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_python_m_analysis_mrmc_json_is_one_object():
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "mrmc", VANDYKE, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(done.stdout)
    assert data["global_test"]["statistic"] == pytest.approx(4.456319, rel=1e-6)
    assert data["treatment_value"] == {
        "1": pytest.approx(0.897037037, rel=1e-8),
        "2": pytest.approx(0.940837359, rel=1e-8),
    }
    assert done.stderr == ""


def test_frrc_json_has_null_df(capsys):
    status, out, _ = run(capsys, "mrmc", VANDYKE, "--factors", "FRRC", "--json")
    data = json.loads(out)
    assert status == 0
    assert data["global_test"]["statistic_name"] == "X2"
    assert data["global_test"]["df2"] is None
    assert data["differences"][0]["df"] is None
    assert data["single_treatment"]["1"]["df"] is None


def test_options_reach_the_analysis(capsys):
    _, out, _ = run(capsys, "mrmc", VANDYKE, "--cov", "unbiased", "--alpha", "0.1", "--json")
    data = json.loads(out)
    assert data["cov"] == "unbiased"
    assert data["global_test"]["statistic"] == pytest.approx(4.489614, rel=1e-6)


def test_table_by_default(capsys):
    status, out, _ = run(capsys, "mrmc", VANDYKE)
    assert status == 0
    assert "global test: F = 4.4563, df = (1, 15.26)" in out
    assert "(0.825224, 0.968850)" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("reader,treatment,case,truth\n1,1,1,0\n", "missing column(s): rating"),
        ("reader,treatment,case,truth,rating\n1,1,1,0,x\n", "non-numeric or missing rating"),
        ("reader,treatment,case,truth,rating\n1,1,1,3,1\n", "truth must be 0 or 1"),
        ("reader,treatment,case,truth,rating\n1,1,1,0,1\n1,1,2,0,2\n", "has no positive"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    status, out, err = run(capsys, "mrmc", str(path))
    assert status != 0
    assert out == ""
    assert message in err
    assert err.count("\n") == 1


def test_unknown_option_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["mrmc", VANDYKE, "--factors", "XYZ"])
    assert exit_info.value.code != 0
    assert capsys.readouterr().err.count("\n") == 1


def test_dbm_json_and_table(capsys):
    status, out, _ = run(capsys, "dbm", VANDYKE, "--factors", "FRRC", "--json")
    data = json.loads(out)
    assert status == 0
    assert data["global_test"]["p_value"] == pytest.approx(0.021034969, rel=1e-7)
    status, out, _ = run(capsys, "dbm", VANDYKE)
    assert "global test: F = 4.4563, df = (1, 15.26)" in out


def test_dbm_bad_input_is_one_line(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("reader,case,truth,rating\n")
    status, _, err = run(capsys, "dbm", str(path))
    assert status != 0
    assert "missing column(s): treatment" in err
    assert err.count("\n") == 1


def test_mrmc_sensitivity_of_binary_calls(capsys, tmp_path):
    lines = Path(VANDYKE).read_text().splitlines()
    binary = [lines[0]]
    for line in lines[1:]:
        *ids, rating = line.split(",")
        binary.append(",".join([*ids, "1" if int(rating) >= 3 else "0"]))
    path = tmp_path / "calls.csv"
    path.write_text("\n".join(binary) + "\n")
    status, out, _ = run(capsys, "mrmc", str(path), "--metric", "sensitivity", "--json")
    data = json.loads(out)
    assert status == 0
    assert data["metric"] == "sensitivity"
    for single in data["single_treatment"].values():
        assert 0.0 <= single["ci_lower"] <= single["estimate"] <= single["ci_upper"] <= 1.0


@pytest.mark.parametrize("argv", [["--help"], ["mrmc", "--help"], ["dbm", "--help"]])
def test_help_prints_and_exits_zero(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_no_subcommand_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
