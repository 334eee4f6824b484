"""The binormal ROC fit (analysis.binormal) against MRMCaov 0.3.0's fits and its own algebra.

``tests/data/mrmcaov_metrics.json`` records MRMCaov's ``binormal_params`` fit of every VanDyke
reader x treatment (written by ``tests/data/mrmcaov_metrics.R``) with the log likelihood and
gradient where ``trust`` stopped.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.binormal import (
    BinormalFit,
    _objective,
    bivariate_normal_cdf,
    collapse,
    fit_binormal,
    fit_binormal_ratings,
)
from analysis.partial import PartialArea

DATA = Path("tests/data")
FITS = json.loads((DATA / "mrmcaov_metrics.json").read_text())["vandyke_binormal_fits"]


def counts_of(treatment: str, reader: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / "vandyke.csv")
    rows = frame[(frame.treatment == int(treatment)) & (frame.reader == int(reader))]
    levels = np.unique(rows.rating)
    neg = np.array([((rows.rating == u) & (rows.truth == 0)).sum() for u in levels], float)
    pos = np.array([((rows.rating == u) & (rows.truth == 1)).sum() for u in levels], float)
    return neg, pos


@pytest.mark.parametrize("fit", FITS, ids=lambda f: f"t{f['treatment']}r{f['reader']}")
def test_fit_reaches_the_maximum_mrmcaov_stops_near(fit: dict) -> None:
    neg, pos = counts_of(fit["treatment"], fit["reader"])
    ours = fit_binormal(neg, pos)
    if "loglik" not in fit:  # MRMCaov's rule for data without interior points
        assert ours.degenerate is not None and ours.a == math.inf
        assert ours.auc == fit["auc"] == 1.0
        return
    assert ours.converged and ours.note is None
    kept = collapse(neg, pos)
    bounds = np.concatenate([[0], kept[:-1] + 1])
    neg_c, pos_c = np.add.reduceat(neg, bounds), np.add.reduceat(pos, bounds)
    theta = np.array([ours.a, ours.b, *ours.cutoffs])
    value, gradient, _ = _objective(theta, neg_c, pos_c)
    # trust stops with a gradient of 1e-5..5e-5; the maximum is higher and flat.
    assert fit["max_abs_gradient"] > 1e-6
    assert np.abs(gradient).max() < 1e-9
    assert -value >= fit["loglik"] and -value - fit["loglik"] < 1e-8
    assert ours.auc == pytest.approx(fit["auc"], abs=3e-7)
    assert ours.a == pytest.approx(fit["a"], abs=2e-5)
    assert ours.b == pytest.approx(fit["b"], abs=2e-5)
    np.testing.assert_allclose(ours.cutoffs, fit["cutoffs"], atol=2e-5)


def test_gradient_and_hessian_equal_finite_differences() -> None:
    neg, pos = np.array([10, 5, 3, 2, 1.0]), np.array([1, 2, 4, 6, 9.0])
    theta = np.array([1.1, 0.8, -0.5, 0.1, 0.6, 1.3])
    _, gradient, hessian = _objective(theta, neg, pos)
    eps = 1e-6
    steps = np.eye(theta.size) * eps
    fd_grad = [
        (_objective(theta + e, neg, pos)[0] - _objective(theta - e, neg, pos)[0]) for e in steps
    ]
    fd_hess = [
        (_objective(theta + e, neg, pos)[1] - _objective(theta - e, neg, pos)[1]) for e in steps
    ]
    np.testing.assert_allclose(gradient, np.array(fd_grad) / (2 * eps), atol=1e-7)
    np.testing.assert_allclose(hessian, np.array(fd_hess) / (2 * eps), atol=1e-7)


def test_fit_from_another_start_reaches_the_same_maximum() -> None:
    neg, pos = counts_of("1", "1")
    cold = fit_binormal(neg, pos)
    start = BinormalFit(
        a=0.5, b=2.0, cutoffs=(-1.0, 0.0, 0.5, 3.0), labels=(0, 1, 2, 3), converged=True
    )
    warm = fit_binormal(neg, pos, start=start)
    assert warm.auc == pytest.approx(cold.auc, abs=1e-12)


@pytest.mark.parametrize(
    ("neg", "pos", "auc"),
    [([7.0], [5.0], 0.5), ([4, 3, 0, 0], [0, 0, 2, 6], 1.0), ([0, 2, 5], [3, 1, 0], 0.0)],
)
def test_data_without_interior_points_follow_mrmcaov_rule(neg, pos, auc) -> None:
    fit = fit_binormal(np.array(neg, float), np.array(pos, float))
    assert fit.auc == auc
    assert "lack of interior points" in (fit.note or "")


def test_fit_without_a_maximum_is_named_not_raised() -> None:
    # A middle category of positives only: the likelihood grows as b -> inf.
    fit = fit_binormal(np.array([5, 0, 3.0]), np.array([0, 4, 0.0]))
    assert not fit.converged
    assert "did not converge" in (fit.note or "")


def test_two_categories_are_named_not_identified() -> None:
    fit = fit_binormal(np.array([30, 10.0]), np.array([8, 20.0]))
    assert "not identified" in (fit.note or "")


def test_collapse_merges_runs_of_one_truth_class_as_mrmcaov() -> None:
    # roc_counts(collapse = TRUE): category 2 (no positives, nor has 3) merges into 3.
    neg = np.array([5, 4, 3, 1, 0.0])
    pos = np.array([1, 0, 0, 2, 6.0])
    assert collapse(neg, pos).tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("kind", ["specificity", "sensitivity"])
def test_partial_area_over_the_whole_range_is_the_auc(kind) -> None:
    fit = fit_binormal_ratings(np.array([1, 1, 2, 2, 2, 3, 4.0]), np.array([2, 3, 3, 4, 4, 5, 5.0]))
    assert fit.area(PartialArea(kind, 0.0, 1.0)) == pytest.approx(fit.auc, abs=1e-12)


def test_partial_areas_over_specificity_add_up() -> None:
    fit = BinormalFit(a=1.3, b=0.7, cutoffs=(0.0, 1.0), labels=(0, 1), converged=True)
    low = fit.area(PartialArea("specificity", 0.0, 0.6))
    high = fit.area(PartialArea("specificity", 0.6, 1.0))
    assert low + high == pytest.approx(fit.auc, abs=1e-12)
    normalized = fit.area(PartialArea("specificity", 0.6, 1.0, normalize=True))
    assert normalized == pytest.approx(high / 0.4, abs=1e-12)
    # Over specificity 0.6-1 the curve is integrated for FPR 0-0.4: compare the trapezoidal
    # rule, which falls short on this concave curve (steep at FPR 0) by about 6e-9.
    fpr = np.linspace(0.0, 0.4, 400_001)
    tpr = fit.tpr(fpr)
    trapezoid = float(np.sum((tpr[1:] + tpr[:-1]) / 2 * np.diff(fpr)))
    assert 0.0 < high - trapezoid < 1e-8


def test_fit_without_a_truth_class_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one negative and one positive"):
        fit_binormal(np.array([0, 0.0]), np.array([3, 4.0]))


def test_fit_runs_out_to_the_supremum_where_the_maximum_is_at_the_boundary() -> None:
    # VanDyke treatment 1, reader 4 without case 107: the positives' top categories hold no
    # negatives, the likelihood grows as b -> 0 and the AUC tends to Phi(a) = 42/44.
    neg, pos = counts_of("1", "4")
    frame = pd.read_csv(DATA / "vandyke.csv")
    rating = int(
        frame[(frame.treatment == 1) & (frame.reader == 4) & (frame.case == 107)].rating.iloc[0]
    )
    truth = int(frame[frame.case == 107].truth.iloc[0])
    (neg if truth == 0 else pos)[rating - 1] -= 1
    fit = fit_binormal(neg, pos, start=fit_binormal(*counts_of("1", "4")))
    assert fit.converged
    assert fit.auc == pytest.approx(42 / 44, abs=1e-12)
    assert "boundary of the model" in (fit.note or "")
    peer = json.loads((DATA / "mrmcaov_metrics.json").read_text())["vandyke_boundary_fit"]
    assert not peer["trust_converged"]
    assert abs(peer["auc"] - 42 / 44) > 1e-5  # where trust stopped, short of the limit


@pytest.mark.parametrize("rho", [-0.999, -0.6, -0.1, 0.0, 0.3, 0.95])
def test_bivariate_normal_cdf_equals_scipy(rho: float) -> None:
    from scipy.stats import multivariate_normal

    law = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])
    for h in (-2.0, -0.5, 0.0, 0.7, 3.0):
        for k in (-1.5, 0.0, 0.4, 2.5):
            assert bivariate_normal_cdf(h, k, rho) == pytest.approx(law.cdf([h, k]), abs=1e-12)


def test_bivariate_normal_cdf_at_infinite_bounds_and_perfect_correlation() -> None:
    assert bivariate_normal_cdf(-math.inf, 0.3, -0.5) == 0.0
    assert bivariate_normal_cdf(math.inf, 0.3, -0.5) == pytest.approx(0.617911422, abs=1e-9)
    assert bivariate_normal_cdf(0.5, -0.2, -1.0) == pytest.approx(
        0.691462461 - 0.579259709, abs=1e-9
    )
    assert bivariate_normal_cdf(-0.5, -0.2, -1.0) == 0.0
    assert bivariate_normal_cdf(0.5, -0.2, 1.0) == pytest.approx(0.420740291, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=7).filter(
        lambda rows: sum(r[0] for r in rows) > 0 and sum(r[1] for r in rows) > 0
    )
)
def test_any_counts_give_an_auc_in_the_unit_interval_and_no_exception(rows) -> None:
    neg = np.array([r[0] for r in rows], dtype=float)
    pos = np.array([r[1] for r in rows], dtype=float)
    fit = fit_binormal(neg, pos)
    assert 0.0 <= fit.auc <= 1.0
    for kind in ("specificity", "sensitivity"):
        area = fit.area(PartialArea(kind, 0.2, 0.9, normalize=True))
        assert -1e-12 <= area <= 1.0 + 1e-12
    if fit.note is None:  # an interior maximum: the likelihood is flat there
        assert fit.converged and 1e-6 < fit.b < 1e6
