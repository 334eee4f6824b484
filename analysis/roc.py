"""Empirical ROC analysis: AUC, placement values, DeLong covariance and ROC curve points.

All functions work on one rating vector or on many at once (a 2-D array whose rows are, for
example, reader x treatment combinations reading the same cases), and cost one sort per row:
``O(N log N)`` in the number of cases ``N``.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Comparing the areas under two or more correlated
receiver operating characteristic curves: a nonparametric approach. Biometrics 44(3):837-845.
doi:10.2307/2531595
Hanley JA, Hajian-Tilaki KO (1997). Sampling variability of nonparametric estimates of the areas
under receiver operating characteristic curves: an update. Academic Radiology 4(1):49-58.
doi:10.1016/S1076-6332(97)80161-4
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Placements:
    """Placement values of the positive and negative cases.

    Attributes
    ----------
    positive : ndarray, shape (k, m)
        ``V10[i] = (#{y_j < x_i} + #{y_j = x_i} / 2) / n``: the fraction of the ``n`` negative
        cases that positive case ``i`` outranks (ties count one half).
    negative : ndarray, shape (k, n)
        ``V01[j] = (#{x_i > y_j} + #{x_i = y_j} / 2) / m``: the fraction of the ``m`` positive
        cases that outrank negative case ``j``.
    """

    positive: FloatArray
    negative: FloatArray

    @property
    def auc(self) -> FloatArray:
        """Empirical AUC of each row: the mean of either set of placement values."""
        return np.asarray(self.positive.mean(axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class DeLongResult:
    """AUCs and their DeLong covariance matrix.

    Attributes
    ----------
    auc : ndarray, shape (k,)
        Empirical AUC of each rating vector.
    covariance : ndarray, shape (k, k)
        ``S10 / m + S01 / n``, with ``S10`` and ``S01`` the sample covariance matrices
        (divisors ``m - 1`` and ``n - 1``) of the positive and negative placement values.
    """

    auc: FloatArray
    covariance: FloatArray

    @property
    def variance(self) -> FloatArray:
        """The diagonal of :attr:`covariance`: the variance of each AUC."""
        return np.asarray(np.diag(self.covariance), dtype=np.float64)

    @property
    def se(self) -> FloatArray:
        """Standard error of each AUC."""
        return np.asarray(np.sqrt(self.variance), dtype=np.float64)


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC operating points, from ``(0, 0)`` to ``(1, 1)``.

    Point ``k`` calls positive every case with ``rating >= thresholds[k]``; the first threshold is
    ``+inf`` (nothing called positive).
    """

    fpr: FloatArray
    tpr: FloatArray
    thresholds: FloatArray


def _as_2d(values: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 1-D or 2-D array, got {array.ndim} dimensions")
    if array.shape[1] == 0:
        raise ValueError(f"{name} is empty: need at least one case of each truth class")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite ratings")
    return array


def _pair(ratings_pos: ArrayLike, ratings_neg: ArrayLike) -> tuple[FloatArray, FloatArray]:
    pos = _as_2d(ratings_pos, "ratings_pos")
    neg = _as_2d(ratings_neg, "ratings_neg")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(
            f"ratings_pos has {pos.shape[0]} rows but ratings_neg has {neg.shape[0]}: "
            "each row is one rating vector over the same cases"
        )
    return pos, neg


def placement_values(ratings: FloatArray, truth: NDArray[np.bool_]) -> Placements:
    """Placement values of a ``(k, N)`` rating array whose columns share the truth ``truth``.

    One argsort per row. In a row's sorted order let ``c(i)`` be the number of negatives before
    position ``i``, and ``s``, ``e`` the first and one-past-last positions of an element's tie
    group; then ``#{y < x} + #{y = x} / 2 = (c(s) + c(e)) / 2``, and likewise for positives.
    Without ties (continuous ratings, checked per call) ``s = i`` and ``e = i + 1``, which skips
    the tie-group bookkeeping.
    """
    k, N = ratings.shape
    m = int(truth.sum())
    n = N - m
    order = np.argsort(ratings, axis=1)
    ordered = np.take_along_axis(ratings, order, axis=1)
    neg_sorted = ~truth[order]
    position = np.arange(N, dtype=np.int64)
    tie = ordered[:, 1:] == ordered[:, :-1]  # tie[:, i]: positions i and i + 1 are tied
    del ordered
    if not tie.any():
        neg_below = np.cumsum(neg_sorted, axis=1, dtype=np.int64)
        neg_below -= neg_sorted.astype(np.int64)  # negatives strictly below each position
        pos_value = neg_below / n
        neg_value = (m - position + neg_below) / m  # positives strictly above, over m
    else:
        neg_before = np.zeros((k, N + 1), dtype=np.int64)
        np.cumsum(neg_sorted, axis=1, out=neg_before[:, 1:])
        first = np.ones((k, N), dtype=bool)  # a tie group starts here
        first[:, 1:] = ~tie
        last = np.ones((k, N), dtype=bool)  # a tie group ends here
        last[:, :-1] = ~tie
        start = np.maximum.accumulate(np.where(first, position, 0), axis=1)
        end = np.minimum.accumulate(np.where(last, position + 1, N)[:, ::-1], axis=1)[:, ::-1]
        neg_lo = np.take_along_axis(neg_before, start, axis=1)
        neg_hi = np.take_along_axis(neg_before, end, axis=1)
        # positives: negatives below plus half the tied ones; negatives: positives above + half.
        pos_value = (neg_lo + neg_hi) / (2.0 * n)
        neg_value = 1.0 - ((start - neg_lo) + (end - neg_hi)) / (2.0 * m)
    value = np.empty((k, N), dtype=np.float64)
    np.put_along_axis(value, order, np.where(neg_sorted, neg_value, pos_value), axis=1)
    return Placements(positive=value[:, truth], negative=value[:, ~truth])


def placements(ratings_pos: ArrayLike, ratings_neg: ArrayLike) -> Placements:
    """Placement values (DeLong's structural components) of positive and negative cases.

    Parameters
    ----------
    ratings_pos : array_like, shape (m,) or (k, m)
        Ratings of the ``m`` truth-positive cases; one row per rating vector (reader).
    ratings_neg : array_like, shape (n,) or (k, n)
        Ratings of the ``n`` truth-negative cases, rows as in ``ratings_pos``.

    Returns
    -------
    Placements
        ``positive`` (k, m) and ``negative`` (k, n); higher ratings mean "more likely positive".

    Notes
    -----
    ``V10[i] = mean_j psi(x_i, y_j)`` and ``V01[j] = mean_i psi(x_i, y_j)`` with
    ``psi(x, y) = 1`` if ``x > y``, ``1/2`` if ``x = y``, else 0 (DeLong et al. 1988,
    doi:10.2307/2531595). Both average to the empirical AUC.
    """
    pos, neg = _pair(ratings_pos, ratings_neg)
    ratings = np.concatenate([pos, neg], axis=1)
    truth = np.zeros(ratings.shape[1], dtype=bool)
    truth[: pos.shape[1]] = True
    return placement_values(ratings, truth)


def empirical_auc(ratings_pos: ArrayLike, ratings_neg: ArrayLike) -> float | FloatArray:
    """Empirical (trapezoidal, Mann-Whitney) area under the ROC curve.

    ``AUC = (1 / (m n)) sum_i sum_j psi(x_i, y_j)``, ``psi = 1`` if ``x_i > y_j``, ``1/2`` on ties,
    0 otherwise: the probability that a random positive case is rated above a random negative
    one, ties counted one half.

    Parameters
    ----------
    ratings_pos : array_like, shape (m,) or (k, m)
        Ratings of the positive cases (one row per rating vector).
    ratings_neg : array_like, shape (n,) or (k, n)
        Ratings of the negative cases.

    Returns
    -------
    float or ndarray
        A float for 1-D input, an array of shape ``(k,)`` for 2-D input.
    """
    auc = placements(ratings_pos, ratings_neg).auc
    if np.ndim(ratings_pos) <= 1:
        return float(auc[0])
    return auc


def delong(ratings_pos: ArrayLike, ratings_neg: ArrayLike) -> DeLongResult:
    """Empirical AUCs with the DeLong (1988) covariance matrix.

    Parameters
    ----------
    ratings_pos : array_like, shape (m,) or (k, m)
        Ratings of the positive cases; each row is one modality or reader on the same cases.
    ratings_neg : array_like, shape (n,) or (k, n)
        Ratings of the negative cases.

    Returns
    -------
    DeLongResult
        ``auc`` (k,) and ``covariance`` (k, k) ``= S10 / m + S01 / n``, where ``S10`` and ``S01``
        are the sample covariance matrices (divisors ``m - 1``, ``n - 1``) of the placement values.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Biometrics 44:837-845. doi:10.2307/2531595
    """
    pos, neg = _pair(ratings_pos, ratings_neg)
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError("the DeLong covariance needs at least 2 positive and 2 negative cases")
    place = placements(pos, neg)
    return DeLongResult(auc=place.auc, covariance=delong_covariance(place))


def delong_covariance(place: Placements) -> FloatArray:
    """DeLong covariance matrix ``S10 / m + S01 / n`` from placement values."""
    v10 = place.positive - place.positive.mean(axis=1, keepdims=True)
    v01 = place.negative - place.negative.mean(axis=1, keepdims=True)
    m, n = v10.shape[1], v01.shape[1]
    s10 = v10 @ v10.T / (m - 1)
    s01 = v01 @ v01.T / (n - 1)
    return np.asarray(s10 / m + s01 / n, dtype=np.float64)


def leave_one_out_auc(place: Placements) -> FloatArray:
    """Leave-one-case-out AUCs in closed form, shape ``(k, m + n)`` (positives first).

    Deleting positive case ``i`` removes its ``n`` comparisons, which sum to ``n V10[i]``:
    ``AUC(-i) = (m AUC - V10[i]) / (m - 1)``; likewise ``AUC(-j) = (n AUC - V01[j]) / (n - 1)``
    for negative case ``j``. No AUC is recomputed, so the jackknife costs one sort per row.
    """
    m = place.positive.shape[1]
    n = place.negative.shape[1]
    if m < 2 or n < 2:
        raise ValueError("the jackknife needs at least 2 positive and 2 negative cases")
    auc = place.auc[:, np.newaxis]
    out_pos = (m * auc - place.positive) / (m - 1)
    out_neg = (n * auc - place.negative) / (n - 1)
    return np.concatenate([out_pos, out_neg], axis=1)


def roc_curve(truth: ArrayLike, rating: ArrayLike) -> RocCurve:
    """Empirical ROC curve: one operating point per distinct rating, plus ``(0, 0)``.

    Parameters
    ----------
    truth : array_like of 0/1, shape (N,)
        1 for a truth-positive case.
    rating : array_like, shape (N,)
        Higher means more likely positive.

    Returns
    -------
    RocCurve
        ``fpr``, ``tpr`` and ``thresholds`` (descending, starting at ``+inf``); joining the points
        with straight lines gives the curve whose area is :func:`empirical_auc`.
    """
    truth_arr = np.asarray(truth)
    rating_arr = np.asarray(rating, dtype=np.float64)
    if truth_arr.shape != rating_arr.shape or truth_arr.ndim != 1:
        raise ValueError("truth and rating must be 1-D arrays of the same length")
    if not np.all(np.isin(truth_arr, (0, 1))):
        raise ValueError("truth must be 0 or 1")
    if not np.all(np.isfinite(rating_arr)):
        raise ValueError("rating contains NaN or infinite values")
    positive = truth_arr.astype(bool)
    m = int(positive.sum())
    n = positive.size - m
    if m == 0 or n == 0:
        raise ValueError("the ROC curve needs at least one positive and one negative case")
    order = np.argsort(-rating_arr, kind="stable")
    ordered = rating_arr[order]
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    last = np.r_[ordered[1:] != ordered[:-1], True]  # last element of each tie group
    tpr = np.r_[0.0, tp[last] / m]
    fpr = np.r_[0.0, fp[last] / n]
    thresholds = np.r_[np.inf, ordered[last]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds)
