"""The binormal likelihood-ratio (PROPROC) fit against MRMCaov 0.3.0.

Golden values: tests/data/mrmcaov_proproc.json, written by tests/data/mrmcaov_proproc.R (the R
calls and MRMCaov's known faults are described there).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.partial import PartialArea
from analysis.proproc import ProprocFit, fit_proproc, loglik_at
from analysis.proproc._model import derivatives, loglik
from analysis.proproc._starts import category_counts

DATA = Path(__file__).resolve().parent.parent / "data"
GOLDEN: dict[str, Any] = json.loads((DATA / "mrmcaov_proproc.json").read_text())
FRAMES = {
    "vandyke": pd.read_csv(DATA / "vandyke.csv"),
    "proproc_sim": pd.read_csv(DATA / "proproc_sim.csv"),
}
FITS: list[dict[str, Any]] = GOLDEN["fits"]
FITTED = [f for f in FITS if f["fitted"]]
# The simulated reader whose positives all sit in the top two categories: the likelihood rises
# along a ridge towards c = 1 and MRMCaov's trust stops 1.6e-7 below where ours does.
RIDGE = ("proproc_sim", 3, 2)
# MRMCaov's trust stops at a relative change of 1.5e-8 in the log-likelihood; where the
# likelihood is flat (d_a near 0) that leaves its AUC up to 1.5e-6 from the maximum.
MRMCAOV_AUC_RTOL = 2e-6
# Partial areas move more with the parameters than the full area: up to 1.1e-5 (Van Dyke
# reader 5, treatment 1, sensitivity 0.8-1).
FIT_PARTIAL_RTOL = 2e-5
# MRMCaov's partial-area cutoffs come from L-BFGS-B on |FPF - target|, good to about 1e-6.
MRMCAOV_PARTIAL_RTOL = 2e-6


def _key(f: dict[str, Any]) -> tuple[str, int, int]:
    return (f["data"], f["reader"], f["treatment"])


def _ids(fits: list[dict[str, Any]]) -> list[str]:
    return [f"{d}-r{r}-t{t}" for d, r, t in map(_key, fits)]


def _ratings(f: dict[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    d = FRAMES[f["data"]]
    s = d[(d.reader == f["reader"]) & (d.treatment == f["treatment"])]
    return s.rating[s.truth == 0].to_numpy(), s.rating[s.truth == 1].to_numpy()


def _d_a(f: dict[str, Any]) -> float:
    return math.inf if f["d_a"] == "Inf" else float(f["d_a"])


def _mrmcaov_curve(f: dict[str, Any]) -> ProprocFit:
    return ProprocFit(d_a=_d_a(f), c=float(f["c"]), converged=f["fitted"], message="")


def _partials(f: dict[str, Any]) -> list[tuple[PartialArea, dict[str, Any]]]:
    out = []
    for key, value in f["partial"].items():
        kind = "specificity" if key.startswith("specificity") else "sensitivity"
        out.append((PartialArea(kind, 0.8, 1.0, key.endswith("normalized")), value))
    return out


@pytest.fixture(scope="module")
def our_fits() -> dict[tuple[str, int, int], ProprocFit]:
    return {_key(f): fit_proproc(*_ratings(f)) for f in FITS}


@pytest.mark.parametrize("f", FITS, ids=_ids(FITS))
def test_full_auc_at_mrmcaovs_estimates_matches_its_auc(f: dict[str, Any]) -> None:
    assert _mrmcaov_curve(f).auc() == pytest.approx(f["auc"], rel=1e-12)


@pytest.mark.parametrize("f", FITS, ids=_ids(FITS))
def test_partial_auc_at_mrmcaovs_estimates_matches_its_curve(f: dict[str, Any]) -> None:
    curve = _mrmcaov_curve(f)
    for partial, golden in _partials(f):
        ours = curve.auc(partial)
        if golden.get("integrate") is not None:
            assert ours == pytest.approx(golden.get("integrate"), rel=1e-9), partial.label
        mrmcaov = golden.get("auc")
        if mrmcaov is not None and 0.0 <= mrmcaov <= 1.0:
            assert ours == pytest.approx(mrmcaov, rel=MRMCAOV_PARTIAL_RTOL), partial.label
        assert 0.0 <= ours <= 1.0


def test_mrmcaovs_faulty_partial_areas_are_in_the_golden_file() -> None:
    # The reason the integral is the reference: MRMCaov's own formula errs or leaves [0, 1].
    values = [g for f in FITTED for _, g in _partials(f)]
    assert any(g.get("auc") is None and "non-finite" in g["error"] for g in values)
    assert any(g.get("auc") is not None and g["auc"] < 0 for g in values)


@pytest.mark.parametrize("f", FITTED, ids=_ids(FITTED))
def test_curve_at_mrmcaovs_estimates_matches_its_sensitivity(f: dict[str, Any]) -> None:
    if f["curve"] is None:
        pytest.skip("binormal-equivalent curve")
    tpf = _mrmcaov_curve(f).tpf(f["curve"]["fpf"])
    np.testing.assert_allclose(tpf, f["curve"]["tpf"], rtol=1e-9)


@pytest.mark.parametrize("f", FITTED, ids=_ids(FITTED))
def test_loglik_at_mrmcaovs_estimates_is_its_objective(f: dict[str, Any]) -> None:
    value = loglik_at(*_ratings(f), _d_a(f), f["c"], f["cutoffs"])
    assert value == pytest.approx(f["loglik"], rel=1e-12)


@pytest.mark.parametrize("f", FITTED, ids=_ids(FITTED))
def test_fit_is_no_worse_than_mrmcaovs_and_gives_its_auc(
    f: dict[str, Any], our_fits: dict[tuple[str, int, int], ProprocFit]
) -> None:
    fit = our_fits[_key(f)]
    assert fit.converged, fit.message
    assert fit.loglik >= f["loglik"] - 1e-9
    if _key(f) == RIDGE:
        assert fit.loglik > f["loglik"] + 1e-7
        assert fit.auc() == pytest.approx(f["auc"], abs=1e-4)
        return
    assert fit.auc() == pytest.approx(f["auc"], rel=MRMCAOV_AUC_RTOL)
    for partial, golden in _partials(f):
        reference = golden.get("integrate")
        assert fit.auc(partial) == pytest.approx(reference, rel=FIT_PARTIAL_RTOL)


@pytest.mark.parametrize("f", [f for f in FITS if not f["fitted"]])
def test_data_without_interior_points_follow_mrmcaovs_rule(
    f: dict[str, Any], our_fits: dict[tuple[str, int, int], ProprocFit]
) -> None:
    fit = our_fits[_key(f)]
    assert not fit.converged
    assert "no interior ROC points" in fit.message
    assert (fit.d_a, fit.c) == (_d_a(f), f["c"])
    assert fit.auc() == f["auc"]
    for partial, golden in _partials(f):
        assert fit.auc(partial) == pytest.approx(golden["auc"], rel=1e-12)


def test_reversed_ratings_give_chance_without_a_fit() -> None:
    fit = fit_proproc([4, 5, 5], [1, 2, 2, 3])
    assert not fit.converged
    assert "reverse" in fit.message
    assert fit.auc() == 0.5
    np.testing.assert_allclose(fit.tpf([0.0, 0.3, 1.0]), [0.0, 0.3, 1.0])


def test_perfect_separation_curve_is_the_top_left_corner() -> None:
    fit = fit_proproc([1, 2, 2], [3, 4])
    assert "separate" in fit.message
    np.testing.assert_array_equal(fit.tpf([0.0, 0.01, 1.0]), [0.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("negatives", "positives", "message"),
    [
        ([], [1, 2], "at least 1 negative"),
        ([1, 2], [], "at least 1 positive"),
        ([1, float("nan")], [2, 3], "negative ratings contain NaN"),
        ([1, 2], [2, float("inf")], "positive ratings contain NaN or infinite"),
    ],
)
def test_bad_ratings_are_refused_by_name(
    negatives: list[float], positives: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_proproc(negatives, positives)


def test_tpf_refuses_fractions_outside_the_unit_interval() -> None:
    fit = ProprocFit(d_a=1.5, c=-0.2, converged=True, message="")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fit.tpf([0.5, 1.2])


def test_fit_depends_only_on_the_order_of_the_ratings() -> None:
    negatives, positives = _ratings(FITS[0])
    fit = fit_proproc(negatives, positives)
    moved = fit_proproc(np.exp(negatives) - 3.0, np.exp(positives) - 3.0)
    assert moved.auc() == pytest.approx(fit.auc(), rel=1e-9)
    assert moved.loglik == pytest.approx(fit.loglik, rel=1e-12)


def test_refit_from_a_start_reaches_the_same_maximum() -> None:
    negatives, positives = _ratings(FITS[4])
    full = fit_proproc(negatives, positives)
    again = fit_proproc(negatives, positives, start=full)
    assert again.loglik >= full.loglik - 1e-9
    assert again.auc() == pytest.approx(full.auc(), rel=1e-6)
    # A jackknife refit: one case left out, started from the full-data fit.
    dropped = fit_proproc(negatives[1:], positives, start=full)
    fresh = fit_proproc(negatives[1:], positives)
    assert dropped.converged
    assert dropped.loglik >= fresh.loglik - 1e-8
    assert dropped.auc() == pytest.approx(fresh.auc(), rel=1e-5)


@pytest.mark.parametrize("x", [[1.8, -0.3, -0.9, -0.2, 0.4, 1.1], [1.2, 0.4, -1.5, -0.7, 0.1, 0.6]])
def test_score_and_observed_information_are_the_loglik_derivatives(x: list[float]) -> None:
    counts = category_counts(*_ratings(FITS[0]))
    at = np.array(x)
    score, fisher, observed = derivatives(at, counts)
    h = 1e-6
    numeric_score = np.empty(at.size)
    numeric_info = np.empty((at.size, at.size))
    for j in range(at.size):
        up, down = at.copy(), at.copy()
        up[j] += h
        down[j] -= h
        numeric_score[j] = (loglik(up, counts) - loglik(down, counts)) / (2 * h)
        numeric_info[:, j] = -(derivatives(up, counts)[0] - derivatives(down, counts)[0]) / (2 * h)
    np.testing.assert_allclose(score, numeric_score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(observed, numeric_info, rtol=1e-6, atol=1e-5)
    assert np.all(np.linalg.eigvalsh(fisher) > 0)


def test_fitted_curve_area_by_trapezoids_is_the_auc(
    our_fits: dict[tuple[str, int, int], ProprocFit],
) -> None:
    fit = our_fits[_key(FITS[2])]
    fpf = np.concatenate(([0.0], np.geomspace(1e-9, 1.0, 20001)))
    tpf = fit.tpf(fpf)
    assert np.all(np.diff(tpf) >= -1e-12)
    assert np.trapezoid(tpf, fpf) == pytest.approx(fit.auc(), abs=1e-6)


def test_ratings_below_chance_fit_the_chance_line() -> None:
    negatives = [0] * 9 + [1] * 14 + [2] * 9
    positives = [0] * 6 + [1] * 5
    fit = fit_proproc(negatives, positives)
    assert fit.converged, fit.message
    assert (fit.d_a, fit.c) == (0.0, 0.0)
    assert fit.auc() == 0.5
    # Both groups at the pooled category shares: the best any proper curve can do here.
    pooled = np.array([15.0, 19.0, 9.0])
    assert fit.loglik == pytest.approx(float(pooled @ np.log(pooled / pooled.sum())), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    negatives=st.lists(st.integers(1, 5), min_size=1, max_size=30),
    positives=st.lists(st.integers(1, 5), min_size=1, max_size=30),
)
def test_any_ratings_give_a_proper_curve(negatives: list[int], positives: list[int]) -> None:
    # A proper curve never falls below the chance line: every area is at least chance's.
    fit = fit_proproc(negatives, positives)
    assert 0.5 - 1e-9 <= fit.auc() <= 1.0
    assert fit.converged or "no interior ROC points" in fit.message, fit.message
    fpf = np.linspace(0.0, 1.0, 21)
    assert np.all(fit.tpf(fpf) >= fpf - 1e-9)
    for kind in ("specificity", "sensitivity"):
        # The chance line's normalized area over either 0.8-1 range is 0.02 / 0.2.
        assert fit.auc(PartialArea(kind, 0.8, 1.0, normalize=True)) >= 0.1 - 1e-9


def test_refit_from_the_chance_line_still_finds_a_better_curve() -> None:
    chance = fit_proproc([0] * 9 + [1] * 14 + [2] * 9, [0] * 6 + [1] * 5)
    negatives, positives = _ratings(FITS[0])
    refit = fit_proproc(negatives, positives, start=chance)
    assert refit.converged
    assert refit.auc() == pytest.approx(FITS[0]["auc"], rel=MRMCAOV_AUC_RTOL)
