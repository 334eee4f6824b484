"""ROC basics against brute-force definitions and known values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analysis.roc import (
    delong,
    empirical_auc,
    leave_one_out_auc,
    placements,
    roc_curve,
)


def brute_psi(pos, neg):
    pos = np.atleast_2d(pos)[:, :, None]
    neg = np.atleast_2d(neg)[:, None, :]
    return (pos > neg) + 0.5 * (pos == neg)


ratings = arrays(np.float64, st.integers(2, 12), elements=st.integers(0, 5).map(float))


def test_empirical_auc_counts_ties_one_half():
    assert empirical_auc([1, 2, 3], [0, 2]) == pytest.approx(0.75)


def test_empirical_auc_of_2d_input_is_one_value_per_row():
    auc = empirical_auc([[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(auc, [1.0, 0.0])


@settings(max_examples=50, deadline=None)
@given(pos=ratings, neg=ratings)
def test_auc_of_negated_ratings_is_one_minus_auc(pos, neg):
    assert empirical_auc(-pos, -neg) == pytest.approx(1.0 - empirical_auc(pos, neg))


@settings(max_examples=50, deadline=None)
@given(pos=ratings, neg=ratings)
def test_placements_equal_brute_force_mean_of_kernel(pos, neg):
    psi = brute_psi(pos, neg)
    place = placements(pos, neg)
    np.testing.assert_allclose(place.positive[0], psi[0].mean(axis=1))
    np.testing.assert_allclose(place.negative[0], psi[0].mean(axis=0))
    assert place.auc[0] == pytest.approx(psi.mean())


continuous = arrays(np.float64, st.integers(2, 12), elements=st.floats(-1e6, 1e6), unique=True)


@settings(max_examples=50, deadline=None)
@given(pos=continuous, neg=continuous)
def test_placements_without_ties_equal_brute_force(pos, neg):
    psi = brute_psi(pos, neg)
    place = placements(pos, neg)
    np.testing.assert_allclose(place.positive[0], psi[0].mean(axis=1))
    np.testing.assert_allclose(place.negative[0], psi[0].mean(axis=0))


@settings(max_examples=30, deadline=None)
@given(pos=ratings, neg=ratings)
def test_leave_one_out_auc_equals_recomputing_without_the_case(pos, neg):
    loo = leave_one_out_auc(placements(pos, neg))[0]
    m = pos.size
    expected = [empirical_auc(np.delete(pos, i), neg) for i in range(m)]
    expected += [empirical_auc(pos, np.delete(neg, j)) for j in range(neg.size)]
    np.testing.assert_allclose(loo, expected, atol=1e-12)


def test_delong_covariance_matches_its_definition():
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 6, size=(3, 15)).astype(float) + np.arange(3)[:, None]
    neg = rng.integers(0, 6, size=(3, 11)).astype(float)
    psi = brute_psi(pos, neg)
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    expected = np.cov(v10) / 15 + np.cov(v01) / 11
    result = delong(pos, neg)
    np.testing.assert_allclose(result.covariance, expected, atol=1e-15)
    np.testing.assert_allclose(result.auc, psi.mean(axis=(1, 2)))
    np.testing.assert_allclose(result.se, np.sqrt(np.diag(expected)))


def test_delong_hanley_mcneil_example_two_by_two():
    # Perfect separation: AUC 1 and zero variance.
    result = delong([3.0, 4.0, 5.0], [0.0, 1.0, 2.0])
    assert result.auc[0] == 1.0
    assert result.variance[0] == 0.0


def test_roc_curve_area_is_the_empirical_auc():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=60)
    rating = rng.integers(0, 7, size=60) + truth
    curve = roc_curve(truth, rating)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(curve.thresholds) < 0)
    area = np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2)
    assert area == pytest.approx(empirical_auc(rating[truth == 1], rating[truth == 0]))


@pytest.mark.parametrize(
    ("pos", "neg", "message"),
    [
        ([], [1.0], "empty"),
        ([1.0, np.nan], [1.0], "NaN"),
        ([[1.0], [2.0]], [[1.0]], "rows"),
    ],
)
def test_bad_ratings_raise_value_error_naming_the_problem(pos, neg, message):
    with pytest.raises(ValueError, match=message):
        empirical_auc(pos, neg)


def test_roc_curve_rejects_truth_other_than_zero_one():
    with pytest.raises(ValueError, match="0 or 1"):
        roc_curve([0, 2], [0.1, 0.2])
