"""Design-aware OR analysis against MRMCaov 0.3.0.

Golden values: ``tests/data/mrmcaov_designs.json``, written by ``tests/data/mrmcaov_designs.R``
(MRMCaov 0.3.0, commit d79e49bc; the R version is recorded in the JSON) from the data sets in
``tests/data/mrmc_designs/``: split-plot, random missing reads, cases nested in readers
(VanDyke ``case2``), cases nested in treatments (``case3``), and binary calls (rating >= 3)
for ``binary_sens`` / ``binary_spec``. Each analysis is
``summary(mrmc(<metric>(truth, rating), treatment, <reader>, <case>, data, cov = <cov>))``
with ``fixed(reader)`` for FRRC and ``fixed(case)`` for RRFC.
"""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.dbm import dbm_analysis
from analysis.io import mrmc_design, read_mrmc_csv
from analysis.mrmc import or_analysis
from analysis.mrmc.covariance import (
    leave_one_out,
    metric_and_covariance,
    unbiased_covariance,
    unbiased_covariance_partial,
)
from analysis.roc import empirical_auc, placement_values

DATA = Path("tests/data")
GOLDEN = json.loads((DATA / "mrmcaov_designs.json").read_text())
ANALYSES = GOLDEN["analyses"]
REL = 1e-6
DESIGN_OF = {
    "vandyke_splitplot": "split-plot",
    "franken_splitplot": "split-plot",
    "vandyke_splitplot_call3": "split-plot",
    "vandyke_missing": "factorial",
    "franken_missing": "factorial",
    "vandyke_case2": "cases-nested-in-readers",
    "vandyke_case3": "cases-nested-in-treatments",
    "vandyke_call3": "factorial",
    "franken_call3": "factorial",
}


def frame_of(name: str) -> pd.DataFrame:
    return read_mrmc_csv(DATA / "mrmc_designs" / name)


def close(actual: float | None, expected: float | None) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-12)


def frrc_truncation_applies(expected: dict[str, Any]) -> bool:
    """Whether cov2 < cov3, where this module truncates the FRRC error term and MRMCaov not."""
    if expected["factors"] != "FRRC":
        return False
    comps = expected["var_components"]
    return bool(comps["cov2"] < comps["cov3"])


@pytest.mark.parametrize("key", sorted(ANALYSES))
def test_or_analysis_matches_mrmcaov(key: str) -> None:
    expected = ANALYSES[key]
    result = or_analysis(
        frame_of(expected["data"]),
        metric=expected["metric"],
        cov=expected["cov"],
        factors=expected["factors"],
    ).to_dict()
    assert result["design"] == DESIGN_OF[expected["data"].removesuffix(".csv")]
    for treatment, value in expected["treatment_value"].items():
        assert close(result["treatment_value"][treatment], value)
    got = {(v["treatment"], v["reader"]): v["value"] for v in result["reader_value"]}
    for v in expected["reader_value"]:
        assert close(got[(v["treatment"], v["reader"])], v["value"])
    if "var_components" in expected:
        for name, value in expected["var_components"].items():
            assert close(result["var_components"][name], value), name
    else:
        assert result["var_components"] is None
    for name, value in expected["single_treatment"].items():
        for field in ("estimate", "se", "df", "ci_lower", "ci_upper"):
            assert close(result["single_treatment"][name][field], value[field]), (name, field)
    (difference,) = result["differences"]
    (reference,) = expected["differences"]
    assert difference["pair"] == reference["pair"]
    assert close(difference["estimate"], reference["estimate"])
    test = result["global_test"]
    if frrc_truncation_applies(expected):
        # MRMCaov's FRRC denominator var - cov1 + (r - 1)(cov2 - cov3) is not truncated; this
        # module uses max(cov2 - cov3, 0), as OR-DBM MRMC (see the module docstring).
        comps = expected["var_components"]
        r = result["n_readers"]
        theirs = comps["var_error"] - comps["cov1"] + (r - 1) * (comps["cov2"] - comps["cov3"])
        ours = comps["var_error"] - comps["cov1"]
        assert close(test["statistic"], expected["global_test"]["statistic"] * theirs / ours)
        assert close(difference["se"], reference["se"] * math.sqrt(ours / theirs))
        return
    for field in ("se", "df", "ci_lower", "ci_upper", "p_value"):
        assert close(difference[field], reference[field]), field
    for field in ("statistic", "df1", "df2", "p_value"):
        assert close(test[field], expected["global_test"][field]), field


def test_the_frrc_truncation_case_is_exercised() -> None:
    assert any(frrc_truncation_applies(expected) for expected in ANALYSES.values())


@pytest.mark.parametrize(
    "name", ["vandyke_splitplot", "vandyke_missing", "vandyke_case2", "vandyke_case3"]
)
def test_covariance_matrix_matches_mrmcaov(name: str) -> None:
    design = mrmc_design(frame_of(f"{name}.csv"))
    for cov in ("jackknife", "unbiased"):
        expected = np.array(ANALYSES[f"{name}/empirical_auc/{cov}/RRRC"]["cov_matrix"])
        _, covariance = metric_and_covariance(design, "empirical_auc", cov)
        # MRMCaov orders the groups test-major, as here (treatment i, reader j -> i r + j)
        np.testing.assert_allclose(covariance, expected, rtol=REL, atol=1e-14)


def test_partial_unbiased_formula_equals_gallas_on_fully_paired_data() -> None:
    design = mrmc_design(read_mrmc_csv(DATA / "vandyke.csv"))
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    expected = unbiased_covariance(rows, design.truth, placement_values(rows, design.truth))
    np.testing.assert_allclose(unbiased_covariance_partial(design), expected, rtol=1e-10)


def test_partially_paired_jackknife_equals_brute_force_leave_one_out() -> None:
    design = mrmc_design(frame_of("vandyke_missing.csv"))
    values, loo = leave_one_out(design, "empirical_auc")
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    seen = design.observed.reshape(t * r, K)
    order = np.concatenate([np.flatnonzero(design.truth), np.flatnonzero(~design.truth)])
    for g in (0, 7):
        for column, k in enumerate(order[::13]):
            keep = seen[g] & (np.arange(K) != k)
            auc = empirical_auc(rows[g, keep & design.truth], rows[g, keep & ~design.truth])
            assert loo[g, column * 13] == pytest.approx(auc, abs=1e-12)
        full = empirical_auc(rows[g, seen[g] & design.truth], rows[g, seen[g] & ~design.truth])
        assert values[g] == pytest.approx(full, abs=1e-12)


def test_delong_on_partially_paired_data_is_refused_as_mrmcaov() -> None:
    assert GOLDEN["delong_partially_paired_error"].startswith("balanced design required")
    with pytest.raises(ValueError, match="delong covariance method needs fully paired data"):
        or_analysis(frame_of("vandyke_splitplot.csv"), cov="delong")


def test_missing_reads_add_a_note_and_the_design_to_the_result() -> None:
    result = or_analysis(frame_of("vandyke_missing.csv"))
    assert result.design == "factorial"
    (note,) = result.notes
    assert note.startswith("factorial (partially paired): 91 of 1140")
    assert "notes" in result.to_text()
    split = or_analysis(frame_of("vandyke_splitplot.csv"))
    assert (split.design, split.notes) == ("split-plot", ())


def test_identical_ratings_give_notes_not_silent_zero_width_intervals(capsys) -> None:
    vandyke = read_mrmc_csv(DATA / "vandyke.csv")
    result = or_analysis(vandyke.assign(rating=3.0))
    data = result.to_dict()
    assert data["single_treatment"]["1"]["se"] == 0.0
    assert any("global test undefined" in note for note in data["notes"])
    assert any(note.startswith("difference 1 - 2: standard error 0") for note in data["notes"])
    assert any(note.startswith("treatment 1: standard error 0") for note in data["notes"])
    assert "zero width" in result.to_text()


def test_fully_crossed_data_have_no_notes() -> None:
    data = or_analysis(read_mrmc_csv(DATA / "vandyke.csv")).to_dict()
    assert (data["design"], data["notes"]) == ("factorial", [])


def test_dbm_refuses_non_factorial_designs_pointing_to_mrmc_and_imrmc() -> None:
    for name in ("vandyke_splitplot.csv", "vandyke_missing.csv", "vandyke_case2.csv"):
        with pytest.raises(ValueError, match=r"DBM needs a fully crossed design.*mrmc.*imrmc"):
            dbm_analysis(frame_of(name))


def test_cli_mrmc_json_reports_the_design(capsys) -> None:
    status = main(["mrmc", str(DATA / "mrmc_designs" / "vandyke_case3.csv"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["design"] == "cases-nested-in-treatments"
    expected = ANALYSES["vandyke_case3/empirical_auc/jackknife/RRRC"]
    assert close(data["global_test"]["p_value"], expected["global_test"]["p_value"])


def test_cli_dbm_on_a_split_plot_and_mrmc_on_a_directory_are_one_line_errors(capsys) -> None:
    status = main(["dbm", str(DATA / "mrmc_designs" / "vandyke_splitplot.csv")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "split-plot" in err
    status = main(["mrmc", str(DATA)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "is a directory" in err
