"""Partial and binormal AUCs in the OR analysis against MRMCaov 0.3.0.

Golden values: ``tests/data/mrmcaov_metrics.json``, written by ``tests/data/mrmcaov_metrics.R``
(MRMCaov 0.3.0, commit d79e49bc, with trust 0.1-8) on VanDyke and on a simulated study with 10%
of its reads missing (``tests/data/mrmc_designs/simulated_missing.csv``). Each analysis is
``summary(mrmc(<metric>(truth, rating, partial, min, max, normalize), treatment, <reader>,
case, cov = jackknife))``.

The empirical partial AUCs match to 1e-12 (relative 1e-6 is asked). MRMCaov's binormal fits
stop where ``trust`` sees a predicted improvement of the log likelihood below 1.5e-8 (its
``fterm``): the gradient there is 1e-5 to 5e-5 (recorded in the JSON) and the AUCs are 1e-7 to
7e-7 from the maximum, which this project reaches (gradient below 1e-12; see
``tests/analysis/test_binormal.py``). One VanDyke jackknife sample (treatment 1, reader 4
without case 107) has no maximum: MRMCaov stops after 100 iterations at AUC 0.954579, this
project runs to the limit 42/44 = 0.954545. The binormal comparisons therefore allow 5e-6
absolute on AUCs, differences and intervals, 2e-3 relative on variances, covariances,
statistics, df and p-values (observed: 1.2e-3 on VanDyke's var_TR, a difference of
covariances; 4e-5 on the simulated study), and 1e-4 of the largest entry on covariance
matrices.
"""

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.binormal import fit_binormal_ratings
from analysis.cli import main
from analysis.io import mrmc_design, read_mrmc_csv
from analysis.mrmc import or_analysis
from analysis.mrmc.bootstrap import (
    bootstrap_indices,
    case_counts,
    design_replicates,
    proportion_replicates,
    resample_design,
)
from analysis.mrmc.covariance import jackknife_covariance, leave_one_out
from analysis.mrmc.metrics import (
    MetricSpec,
    jackknife_values,
    metric_values,
    replicate_values,
    spec_metric_and_covariance,
)
from analysis.mrmc.results import ORResult
from analysis.partial import PartialArea

DATA = Path("tests/data")
GOLDEN = json.loads((DATA / "mrmcaov_metrics.json").read_text())
ANALYSES = GOLDEN["analyses"]
FILES = {
    "vandyke": DATA / "vandyke.csv",
    "simulated_missing": DATA / "mrmc_designs" / "simulated_missing.csv",
}


def frame_of(name: str) -> pd.DataFrame:
    return read_mrmc_csv(FILES[name])


@functools.cache
def analysis_of(
    name: str, metric: str, partial: PartialArea | None = None, factors: str = "RRRC"
) -> ORResult:
    """One OR analysis per data set and options for the whole run (the fitted metrics refit
    every jackknife sample: seconds each)."""
    return or_analysis(frame_of(name), metric=metric, partial=partial, factors=factors)


def partial_of(expected: dict[str, Any]) -> PartialArea | None:
    p = expected["partial"]
    if p is None:
        return None
    return PartialArea(p["kind"], p["min"], p["max"], p["normalize"])


#: Tolerances: ``value`` absolute on metric-scale numbers (AUCs, differences, intervals),
#: ``variance`` relative on variances, standard errors, statistics, df and p-values.
#: ``matrix``: absolute on covariance matrix entries, as a fraction of the largest entry.
EXACT = {"value": 1e-12, "variance": 1e-6, "matrix": 1e-12}
BINORMAL = {"value": 2e-5, "variance": 2e-3, "matrix": 5e-4}
#: PROPROC (binormalLR_auc): MRMCaov's trust stops at log-likelihoods up to 2e-8 below the
#: maximum this project reaches, its reader and jackknife AUCs up to 5e-6 from ours
#: (``test_mrmc_binormal_lr.py``); the covariances are sums of products of jackknife
#: deviations of 1e-3 to 2e-2, so they carry that error relative to their size.
PROPROC = {"value": 1e-5, "variance": 2e-3, "matrix": 5e-4}


def tolerance(expected: dict[str, Any]) -> dict[str, float]:
    return {"binormal_auc": BINORMAL, "binormalLR_auc": PROPROC}.get(expected["metric"], EXACT)


def check_value(actual: float | None, expected: float, tol: dict[str, float]) -> None:
    assert actual is not None
    assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=tol["value"]), (actual, expected)


def check_variance(actual: float | None, expected: float | None, tol: dict[str, float]) -> None:
    if expected is None:
        assert actual is None
        return
    assert actual is not None
    assert math.isclose(actual, expected, rel_tol=tol["variance"], abs_tol=1e-12), (
        actual,
        expected,
    )


#: MRMCaov's partial PROPROC areas of some jackknife samples are wrong (its partial-area formula;
#: ``test_mrmc_binormal_lr.py`` checks the covariance from its own fits integrated correctly).
COMPARED = sorted(
    k for k, v in ANALYSES.items() if not (v["metric"] == "binormalLR_auc" and v["partial"])
)


@pytest.mark.parametrize("key", COMPARED)
def test_or_analysis_matches_mrmcaov(key: str) -> None:
    expected = ANALYSES[key]
    result = analysis_of(
        expected["data"], expected["metric"], partial_of(expected), expected["factors"]
    ).to_dict()
    check_against_mrmcaov(result, expected, tolerance(expected))


def check_against_mrmcaov(
    result: dict[str, Any], expected: dict[str, Any], tol: dict[str, float]
) -> None:
    """Every number of an OR analysis's JSON against MRMCaov's summary, at tolerances ``tol``."""
    values = {(v["treatment"], v["reader"]): v["value"] for v in result["reader_value"]}
    for v in expected["reader_value"]:
        check_value(values[(v["treatment"], v["reader"])], v["value"], tol)
    for name, value in expected["treatment_value"].items():
        check_value(result["treatment_value"][name], value, tol)
    for name, value in expected["var_components"].items():
        check_variance(result["var_components"][name], value, tol)
    for field in ("statistic", "df2", "p_value"):
        check_variance(result["global_test"][field], expected["global_test"][field], tol)
    for ours, theirs in zip(result["differences"], expected["differences"], strict=True):
        assert ours["pair"] == theirs["pair"]
        for field in ("estimate", "ci_lower", "ci_upper"):
            check_value(ours[field], theirs[field], tol)
        for field in ("se", "df", "p_value"):
            check_variance(ours[field], theirs[field], tol)
    for name, single in expected["single_treatment"].items():
        for field in ("estimate", "ci_lower", "ci_upper"):
            check_value(result["single_treatment"][name][field], single[field], tol)
        for field in ("se", "df"):
            check_variance(result["single_treatment"][name][field], single[field], tol)
    partial = partial_of(expected)
    if partial is None:
        assert "partial" not in result
    else:
        assert result["partial"] == expected["partial"]


@pytest.mark.parametrize("key", [k for k in COMPARED if k.endswith("/RRRC")])
def test_jackknife_covariance_matches_mrmcaov(key: str) -> None:
    expected = ANALYSES[key]
    tol = tolerance(expected)
    design = mrmc_design(frame_of(expected["data"]))
    spec = MetricSpec(expected["metric"], partial_of(expected))
    _, covariance, _ = spec_metric_and_covariance(design, spec, "jackknife", n_boot=0, seed=0)
    theirs = np.asarray(expected["cov_matrix"], dtype=np.float64)
    # MRMCaov orders the groups test-major, as here (treatment i, reader j -> i r + j).
    atol = tol["matrix"] * np.abs(theirs).max()
    np.testing.assert_allclose(covariance, theirs, rtol=tol["variance"], atol=atol)


SPECS = [
    MetricSpec("empirical_auc", PartialArea("specificity", 0.8, 1.0)),
    MetricSpec("empirical_auc", PartialArea("sensitivity", 0.7, 1.0, normalize=True)),
    MetricSpec("binormal_auc"),
    MetricSpec("binormal_auc", PartialArea("specificity", 0.8, 1.0)),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_jackknife_equals_recomputing_each_case_deleted_design(spec: MetricSpec) -> None:
    design = mrmc_design(frame_of("simulated_missing"))
    values, loo, _ = jackknife_values(design, spec)
    K = design.ratings.shape[2]
    np.testing.assert_allclose(values, metric_values(design, spec).ravel(), atol=1e-13)
    for k in (0, 5, 30, K - 1):
        kept = np.delete(np.arange(K), k)
        np.testing.assert_allclose(
            loo[:, k], metric_values(resample_design(design, kept), spec).ravel(), atol=1e-10
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_bootstrap_replicates_equal_scoring_each_resampled_design(spec: MetricSpec) -> None:
    design = mrmc_design(frame_of("vandyke"))
    indices = bootstrap_indices(design.truth, 4, seed=3)
    counts = case_counts(indices, design.truth.size)
    ours = replicate_values(design, spec, counts).values
    scored = design_replicates(lambda d: metric_values(d, spec))(design, indices)
    # Every fit reaches its maximum, or the limit of the supremum where the maximum is at the
    # boundary (reader 4, treatment 1 of one replicate: b -> 0), whatever its start.
    np.testing.assert_allclose(ours, scored, atol=1e-10)


def test_bootstrap_of_a_partial_binormal_auc_runs_and_is_reported(capsys) -> None:
    status = main(
        [
            "mrmc",
            str(FILES["vandyke"]),
            "--metric",
            "binormal_auc",
            "--partial",
            "specificity",
            "--min",
            "0.8",
            "--cov",
            "bootstrap",
            "--n-boot",
            "40",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["bootstrap"] == {"n_boot": 40, "seed": 0}
    assert data["partial"] == {"kind": "specificity", "min": 0.8, "max": 1.0, "normalize": False}
    assert 0.0 < data["var_components"]["var_error"] < 0.01
    assert any(
        note.startswith("reader 4, treatment 2: binormal fit has AUC = 1") for note in data["notes"]
    )


@pytest.mark.parametrize("cov", ["delong", "unbiased"])
def test_delong_and_unbiased_refuse_a_partial_auc_as_mrmcaov(cov: str, capsys) -> None:
    peer = GOLDEN["delong_partial_error" if cov == "delong" else "unbiased_partial_error"]
    assert peer.lower() == f"{cov} covariance method not available for partial auc"
    status = main(["mrmc", str(FILES["vandyke"]), "--cov", cov, "--partial", "sensitivity"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert f"the {cov} covariance method is not available for a partial AUC" in err


def test_binormal_covariance_other_than_jackknife_or_bootstrap_is_refused() -> None:
    with pytest.raises(ValueError, match="delong covariance method needs metric empirical_auc"):
        or_analysis(frame_of("vandyke"), metric="binormal_auc", cov="delong")


def test_degenerate_binormal_fit_is_named_in_notes() -> None:
    result = analysis_of("vandyke", "binormal_auc")
    assert any(
        note.startswith("reader 4, treatment 2: binormal fit has AUC = 1") for note in result.notes
    )
    assert dict(((v.treatment, v.reader), v.value) for v in result.reader_value)[("2", "4")] == 1.0


def test_cli_text_names_the_partial_area(capsys) -> None:
    args = ["--partial", "specificity", "--min", "0.8", "--normalize"]
    assert main(["mrmc", str(FILES["vandyke"]), *args]) == 0
    out = capsys.readouterr().out
    assert "metric empirical_auc (partial AUC, specificity 0.8-1 (normalized))" in out


def test_cli_without_partial_keeps_its_json_keys(capsys) -> None:
    assert main(["mrmc", str(FILES["vandyke"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "partial" not in data
    assert data["treatment_value"] == pytest.approx({"1": 0.897037, "2": 0.940837}, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "0.8"], "--min, --max and --normalize need --partial"),
        (["--metric", "sensitivity", "--partial", "specificity"], "--partial needs an AUC"),
        (["--partial", "specificity", "--min", "0.9", "--max", "0.8"], "need 0 <= min < max"),
    ],
)
def test_cli_partial_option_errors_are_one_line(args: list[str], message: str, capsys) -> None:
    assert main(["mrmc", str(FILES["vandyke"]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_binormal_fit_of_ratings_is_what_the_analysis_reports() -> None:
    frame = frame_of("vandyke")
    rows = frame[(frame.treatment == "1") & (frame.reader == "3")]
    fit = fit_binormal_ratings(
        rows.rating[rows.truth == 0].to_numpy(float), rows.rating[rows.truth == 1].to_numpy(float)
    )
    result = or_analysis(frame, metric="binormal_auc")
    values = {(v.treatment, v.reader): v.value for v in result.reader_value}
    assert values[("1", "3")] == fit.auc


def test_binormal_covariance_equals_mrmcaov_given_its_unconverged_jackknife_fit() -> None:
    # The one VanDyke jackknife sample without a maximum (treatment 1, reader 4, case 107
    # deleted): with the AUC where MRMCaov's trust stopped in place of the limit this project
    # reaches, the covariance matrices agree to the fits' own precision.
    expected = np.asarray(ANALYSES["vandyke/binormal_auc/full/RRRC"]["cov_matrix"])
    design = mrmc_design(frame_of("vandyke"))
    _, loo, _ = jackknife_values(design, MetricSpec("binormal_auc"))
    group, case = design.readers.index("4"), design.cases.index("107")
    assert loo[group, case] == pytest.approx(42 / 44, abs=1e-12)
    loo[group, case] = GOLDEN["vandyke_boundary_fit"]["auc"]
    covariance = jackknife_covariance(loo)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(covariance, expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", ["vandyke", "simulated_missing"])
def test_closed_form_jackknife_of_the_empirical_auc_equals_the_generic_one(name: str) -> None:
    design = mrmc_design(frame_of(name))
    values, loo, _ = jackknife_values(design, MetricSpec("empirical_auc"))
    closed_values, closed_loo = leave_one_out(design, "empirical_auc")
    np.testing.assert_allclose(values, closed_values, atol=1e-14)
    np.testing.assert_allclose(
        jackknife_covariance(loo), jackknife_covariance(closed_loo), rtol=1e-12, atol=1e-16
    )


@pytest.mark.parametrize("metric", ["sensitivity", "specificity"])
def test_vectorised_bootstrap_of_proportions_equals_the_generic_scores(metric: str) -> None:
    frame = frame_of("vandyke")
    frame["rating"] = (frame["rating"] >= 3).astype(float)
    design = mrmc_design(frame)
    indices = bootstrap_indices(design.truth, 5, seed=1)
    generic = replicate_values(design, MetricSpec(metric), case_counts(indices, 114)).values
    np.testing.assert_allclose(generic, proportion_replicates(design, indices, metric), atol=1e-14)
