"""Reader performance metrics and their covariance over cases, for the OR model.

For a fully crossed design with ``t`` treatments, ``r`` readers and ``K`` cases, each estimator
returns the ``t x r`` metric values and the ``(t r) x (t r)`` covariance matrix of those values
over the population of cases (index ``i r + j`` for treatment ``i``, reader ``j``).

Estimators
----------
jackknife
    ``(K - 1) / K sum_k (theta_(-k) - mean)(phi_(-k) - mean)`` over all ``K`` cases, the
    convention of MRMCaov and OR-DBM MRMC. The leave-one-case-out values come in closed form from
    placement values (:func:`analysis.roc.leave_one_out_auc`): no AUC is recomputed, and the cost
    is one sort per reader x treatment, ``O(t r K log K)``, plus one ``(t r) x (t r) x K``
    matrix product.
delong
    ``S10 / m + S01 / n`` with sample covariances of the placement values (DeLong et al. 1988,
    doi:10.2307/2531595).
unbiased
    Gallas' U-statistic estimator (Gallas 2006, doi:10.1016/j.acra.2005.11.030; Gallas, Pennello
    and Myers 2007, doi:10.1364/JOSAA.24.000B70): for two rating vectors ``a``, ``b`` on the same
    cases, ``c1 M1 + c2 M2 + c3 M3 + (c4 - 1) M4`` with ``c1 = 1/(mn)``, ``c2 = (n-1)/(mn)``,
    ``c3 = (m-1)/(mn)``, ``c4 = (m-1)(n-1)/(mn)`` and ``M1..M4`` the unbiased moments of
    ``psi_a(x_i, y_j) psi_b(x_i', y_j')`` for (i = i', j = j'), (i = i', j != j'),
    (i != i', j = j'), (i != i', j != j'). M2..M4 come from placement values; M1 needs the
    kernel products, ``O(m n)`` per pair (computed in blocks).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from analysis.io import MRMCDesign
from analysis.roc import Placements, delong_covariance, leave_one_out_auc, placement_values

FloatArray = NDArray[np.float64]
Metric = Literal["empirical_auc", "sensitivity", "specificity"]
CovMethod = Literal["jackknife", "delong", "unbiased"]
METRICS: tuple[Metric, ...] = ("empirical_auc", "sensitivity", "specificity")
COV_METHODS: tuple[CovMethod, ...] = ("jackknife", "delong", "unbiased")


def metric_placements(design: MRMCDesign, metric: Metric) -> Placements:
    """Per-case contributions whose means are the metric, one row per treatment x reader.

    For the empirical AUC these are the placement values. For sensitivity, a positive case
    contributes its 0/1 call and a negative case the reader's sensitivity itself (so that
    deleting it leaves the value unchanged); specificity mirrors this with ``1 - call`` on the
    negative cases. The jackknife formula of :func:`analysis.roc.leave_one_out_auc` then gives
    the leave-one-case-out values of all three metrics, as MRMCaov's ``binary_sens`` and
    ``binary_spec``.
    """
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    if metric == "empirical_auc":
        return placement_values(rows, design.truth)
    if metric not in ("sensitivity", "specificity"):
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not np.all(np.isin(rows, (0.0, 1.0))):
        raise ValueError(f"metric {metric} needs binary ratings (0 or 1, a reader's call)")
    calls_pos = rows[:, design.truth]
    calls_neg = rows[:, ~design.truth]
    if metric == "sensitivity":
        sens = calls_pos.mean(axis=1, keepdims=True)
        return Placements(
            positive=calls_pos, negative=np.broadcast_to(sens, calls_neg.shape).copy()
        )
    spec_values = 1.0 - calls_neg
    spec = spec_values.mean(axis=1, keepdims=True)
    return Placements(positive=np.broadcast_to(spec, calls_pos.shape).copy(), negative=spec_values)


def jackknife_covariance(place: Placements) -> FloatArray:
    """Jackknife covariance ``(K - 1) / K`` times the cross-products of centred LOO values."""
    loo = leave_one_out_auc(place)
    K = loo.shape[1]
    centred = loo - loo.mean(axis=1, keepdims=True)
    return np.asarray((K - 1) / K * (centred @ centred.T), dtype=np.float64)


def unbiased_covariance(
    ratings: FloatArray, truth: NDArray[np.bool_], place: Placements
) -> FloatArray:
    """Gallas' unbiased U-statistic covariance matrix of empirical AUCs (see module notes)."""
    pos = ratings[:, truth]
    neg = ratings[:, ~truth]
    k, m = pos.shape
    n = neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError("the unbiased covariance needs at least 2 positive and 2 negative cases")
    # M1 numerator: sum_ij psi_a(i, j) psi_b(i, j), in blocks of positives to bound memory.
    same_pair = np.zeros((k, k), dtype=np.float64)
    block = max(1, 2_000_000 // max(1, k * n))
    for lo in range(0, m, block):
        x = pos[:, lo : lo + block, np.newaxis]
        y = neg[:, np.newaxis, :]
        psi = (x > y).astype(np.float64) + 0.5 * (x == y)
        flat = psi.reshape(k, -1)
        same_pair += flat @ flat.T
    row = n * place.positive  # row sums of psi, shape (k, m)
    col = m * place.negative  # column sums, shape (k, n)
    total = m * n * place.auc
    same_pos = row @ row.T  # sum_i sum_j sum_j' psi_a(i, j) psi_b(i, j')
    same_neg = col @ col.T
    M1 = same_pair / (m * n)
    M2 = (same_pos - same_pair) / (m * n * (n - 1))
    M3 = (same_neg - same_pair) / (m * n * (m - 1))
    M4 = (np.outer(total, total) - same_pos - same_neg + same_pair) / (m * (m - 1) * n * (n - 1))
    c1 = 1.0 / (m * n)
    c2 = (n - 1) / (m * n)
    c3 = (m - 1) / (m * n)
    c4 = (m - 1) * (n - 1) / (m * n)
    return np.asarray(c1 * M1 + c2 * M2 + c3 * M3 + (c4 - 1.0) * M4, dtype=np.float64)


def metric_and_covariance(
    design: MRMCDesign, metric: Metric, cov: CovMethod
) -> tuple[FloatArray, FloatArray]:
    """Metric values ``(t, r)`` and their covariance matrix over cases ``(t r, t r)``."""
    if cov not in COV_METHODS:
        raise ValueError(
            f"unknown covariance method {cov!r}: choose one of {', '.join(COV_METHODS)}"
        )
    if cov == "unbiased" and metric != "empirical_auc":
        raise ValueError("the unbiased covariance method needs metric empirical_auc")
    t, r, _ = design.ratings.shape
    if design.n_positive < 2 or design.n_negative < 2:
        raise ValueError("need at least 2 positive and 2 negative cases")
    place = metric_placements(design, metric)
    values = place.auc.reshape(t, r)
    if cov == "jackknife":
        covariance = jackknife_covariance(place)
    elif cov == "delong":
        covariance = delong_covariance(place)
    else:
        covariance = unbiased_covariance(design.ratings.reshape(t * r, -1), design.truth, place)
    return values, covariance
