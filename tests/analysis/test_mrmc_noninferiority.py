"""Non-inferiority tests and Holm-adjusted comparisons against MRMCaov 0.3.0 and R.

Golden values: ``tests/data/noninferiority.json``, written by ``tests/data/noninferiority.R``
(MRMCaov 0.3.0, commit d79e49bc, R 4.2): the one-sided test computed in R from the estimate,
standard error and df of MRMCaov's ``summary(mrmc(empirical_auc(truth, rating), ...))``
difference (``pt(..., lower.tail = FALSE)``, ``qt(1 - alpha / 2, df)``), and
``p.adjust(p, "holm")`` on its pairwise p-values of the three-treatment
``tests/data/vandyke_three.csv``.
"""

import json
import math
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from analysis.io import read_mrmc_csv
from analysis.mrmc import or_analysis
from analysis.mrmc.noninferiority import holm

DATA = Path("tests/data")
GOLDEN = json.loads((DATA / "noninferiority.json").read_text())
REL = 1e-6


def close(actual: float | None, expected: float | None) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-12)


def case_id(case: dict[str, Any]) -> str:
    return f"{case['data']}-{case['factors']}-{case['margin']}-ref{case['reference']}"


@pytest.mark.parametrize("expected", GOLDEN["noninferiority"], ids=case_id)
def test_noninferiority_equals_the_test_computed_from_mrmcaov(expected):
    result = or_analysis(
        read_mrmc_csv(DATA / expected["data"]),
        factors=expected["factors"],
        margin=expected["margin"],
        reference=expected["reference"],
    )
    tests = result.to_dict()["non_inferiority"]
    assert tests["margin"] == expected["margin"]
    assert tests["reference"] == expected["reference"]
    assert tests["one_sided_alpha"] == GOLDEN["alpha"] / 2
    (comparison,) = tests["comparisons"]
    assert comparison["pair"] == expected["pair"]
    assert close(comparison["estimate"], expected["estimate"])
    assert close(comparison["df"], expected["df"])
    if expected["data"] == "franken.csv" and expected["factors"] == "FRRC":
        # MRMCaov does not truncate cov2 - cov3 at 0 in the FRRC error term (named in
        # analysis/mrmc/obuchowski_rockette.py): its SE, and so the test, differ here.
        assert not close(comparison["se"], expected["se"])
        (difference,) = result.differences  # "1 - 2"
        own = -difference.ci_upper if expected["reference"] == "1" else difference.ci_lower
        assert comparison["lower"] == pytest.approx(own, rel=1e-12)
        return
    for key in ("se", "lower", "statistic", "p_value"):
        assert close(comparison[key], expected[key]), key
    assert comparison["non_inferior"] is expected["non_inferior"]


def test_noninferiority_lower_limit_is_that_of_the_two_sided_interval():
    result = or_analysis(read_mrmc_csv(DATA / "vandyke.csv"), margin=0.05)
    (difference,) = result.differences  # "1 - 2"
    (comparison,) = result.non_inferiority.comparisons  # "2 - 1"
    assert comparison.lower == pytest.approx(-difference.ci_upper, rel=1e-12)
    assert comparison.non_inferior is (comparison.p_value < 0.025)


@pytest.mark.parametrize("factors", ["RRRC", "FRRC", "RRFC"])
def test_holm_adjusted_p_values_equal_p_adjust_on_mrmcaov_p_values(factors):
    expected = GOLDEN["holm"]["analyses"][factors]
    result = or_analysis(
        read_mrmc_csv(DATA / GOLDEN["holm"]["data"]), factors=factors, adjust="holm"
    )
    data = result.to_dict()
    assert data["adjust"] == "holm"
    assert [d["pair"] for d in data["differences"]] == expected["pair"]
    for d, p, adjusted in zip(
        data["differences"], expected["p_value"], expected["p_adjusted"], strict=True
    ):
        assert close(d["p_value"], p)
        assert close(d["p_adjusted"], adjusted)


def test_holm_keeps_undefined_p_values_out_of_the_count():
    # p.adjust(c(0.01, NA, 0.04, 0.03), "holm") = 0.03, NA, 0.06, 0.06
    adjusted = holm([0.01, math.nan, 0.04, 0.03])
    assert adjusted[0] == pytest.approx(0.03)
    assert math.isnan(adjusted[1])
    assert adjusted[2:] == pytest.approx((0.06, 0.06))


def test_without_options_the_json_has_no_new_keys():
    data = or_analysis(read_mrmc_csv(DATA / "vandyke.csv")).to_dict()
    assert "non_inferiority" not in data and "adjust" not in data
    assert "p_adjusted" not in data["differences"][0]


def test_cli_margin_reference_and_holm_reach_the_json(capsys):
    status = main(
        [
            "mrmc",
            str(DATA / "vandyke_three.csv"),
            "--margin",
            "0.05",
            "--reference",
            "2",
            "--adjust",
            "holm",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [c["pair"] for c in data["non_inferiority"]["comparisons"]] == ["1 - 2", "3 - 2"]
    assert [d["p_adjusted"] is not None for d in data["differences"]] == [True] * 3


def test_cli_table_shows_the_decision(capsys):
    assert main(["mrmc", str(DATA / "vandyke.csv"), "--margin", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "non-inferiority, margin 0.05 against 1" in out
    assert "2 - 1" in out and "non-inferior" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--margin", "1.5"], "margin must be between 0 and 1"),
        (["--margin", "0"], "margin must be between 0 and 1"),
        (["--reference", "1"], "needs a non-inferiority margin"),
        (["--margin", "0.05", "--reference", "9"], "reference treatment '9' is not in the data"),
    ],
)
def test_bad_margin_or_reference_is_a_one_line_error(capsys, argv, message):
    assert main(["mrmc", str(DATA / "vandyke.csv"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("factors", ["RRRC", "RRFC"])
def test_dbm_noninferiority_and_holm_equal_the_or_jackknife_ones(capsys, factors):
    # DBM and OR with the jackknife covariance are the same analysis for RRRC and RRFC
    # (Hillis 2008); so must their non-inferiority tests and adjusted p-values be.
    argv = [
        str(DATA / "vandyke_three.csv"),
        "--factors",
        factors,
        "--margin",
        "0.05",
        "--reference",
        "3",
        "--adjust",
        "holm",
        "--json",
    ]
    assert main(["dbm", *argv]) == 0
    dbm = json.loads(capsys.readouterr().out)
    assert main(["mrmc", *argv]) == 0
    mrmc = json.loads(capsys.readouterr().out)
    assert dbm["adjust"] == "holm"
    for a, b in zip(dbm["differences"], mrmc["differences"], strict=True):
        assert close(a["p_adjusted"], b["p_adjusted"])
    pairs = zip(
        dbm["non_inferiority"]["comparisons"], mrmc["non_inferiority"]["comparisons"], strict=True
    )
    for a, b in pairs:
        assert a["pair"] == b["pair"] and a["non_inferior"] == b["non_inferior"]
        for key in ("estimate", "se", "df", "lower", "statistic", "p_value"):
            assert close(a[key], b[key]), key


def test_dbm_table_shows_adjusted_p_values(capsys):
    assert main(["dbm", str(DATA / "vandyke_three.csv"), "--adjust", "holm"]) == 0
    assert "p (Holm)" in capsys.readouterr().out
