"""Reader performance metrics and their covariance over cases, for the OR model.

For a design with ``t`` treatments, ``r`` readers and ``K`` cases, each estimator returns the
``t x r`` metric values and the ``(t r) x (t r)`` covariance matrix of those values over the
population of cases (index ``i r + j`` for treatment ``i``, reader ``j``). Each value uses the
cases its reader read under its treatment; reads may be missing (partially paired and nested
designs, :func:`analysis.io.detect_design`), as in MRMCaov 0.3.0.

Estimators
----------
jackknife
    ``(n - 1) / n sum_k (theta_(-k) - mean)(phi_(-k) - mean)`` over the ``n`` jackknife cases,
    the convention of MRMCaov (``R/jackknife.R``) and OR-DBM MRMC. The jackknife cases are all
    ``K`` cases for the AUC, only the positive cases for sensitivity and only the negative ones
    for specificity (the other class does not enter the metric; MRMCaov drops it before the
    jackknife of ``binary_sens`` / ``binary_spec``, and RJafroc does the same). Deleting a case
    that a reader did not read under a treatment leaves that value unchanged. The
    leave-one-case-out values come in closed form (:func:`analysis.roc.leave_one_out_auc` for
    the AUC): no metric is recomputed, and the cost is one sort per reader x treatment,
    ``O(t r K log K)``, plus one ``(t r) x (t r) x n`` matrix product.
delong
    ``S10 / m + S01 / n`` with sample covariances of the placement values (DeLong et al. 1988,
    doi:10.2307/2531595). Empirical AUC of fully paired data only, as MRMCaov.
unbiased
    Gallas' U-statistic estimator (Gallas 2006, doi:10.1016/j.acra.2005.11.030; Gallas, Pennello
    and Myers 2007, doi:10.1364/JOSAA.24.000B70): for two rating vectors ``a``, ``b`` on the same
    cases, ``c1 M1 + c2 M2 + c3 M3 + (c4 - 1) M4`` with ``c1 = 1/(mn)``, ``c2 = (n-1)/(mn)``,
    ``c3 = (m-1)/(mn)``, ``c4 = (m-1)(n-1)/(mn)`` and ``M1..M4`` the unbiased moments of
    ``psi_a(x_i, y_j) psi_b(x_i', y_j')`` for (i = i', j = j'), (i = i', j != j'),
    (i != i', j = j'), (i != i', j != j'). M2..M4 come from placement values; M1 needs the
    kernel products, ``O(m n)`` per pair (computed in blocks). With missing reads, MRMCaov's
    ``unbiased_default`` (``R/unbiased.R``): for groups ``a`` (``m_a`` positives, ``n_a``
    negatives read) and ``b``, with ``p`` positives and ``q`` negatives read by both,
    ``delta = N / (N - m_a q m_b - n_a p n_b + p q)``, ``N = m_a n_a m_b n_b``, and
    ``cov = ((1 - delta) S_a S_b + delta (sum_i R_ai R_bi + sum_j C_aj C_bj
    - sum_ij psi_a(i, j) psi_b(i, j))) / N``, with ``S`` the kernel sums, ``R`` and ``C`` their
    row and column sums over the shared cases. On fully paired data it equals the form above.
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


def _check_binary(values: FloatArray, metric: Metric) -> None:
    if not np.all(np.isin(values, (0.0, 1.0))):
        raise ValueError(f"metric {metric} needs binary ratings (0 or 1, a reader's call)")


def check_case_counts(design: MRMCDesign, metric: Metric) -> None:
    """Raise ValueError unless every reader x treatment read 2 cases of each class it needs."""
    t, r, _ = design.ratings.shape
    n_pos = (design.observed & design.truth).sum(axis=2)
    n_neg = (design.observed & ~design.truth).sum(axis=2)
    need_pos = metric != "specificity"
    need_neg = metric != "sensitivity"
    for i in range(t):
        for j in range(r):
            if (need_pos and n_pos[i, j] < 2) or (need_neg and n_neg[i, j] < 2):
                raise ValueError(
                    f"reader {design.readers[j]} under treatment {design.treatments[i]} read "
                    f"{n_pos[i, j]} positive and {n_neg[i, j]} negative cases: {metric} needs "
                    "at least 2 of each class it uses"
                )


def jackknife_cases(design: MRMCDesign, metric: Metric) -> NDArray[np.intp]:
    """Indices of the cases the jackknife deletes in turn: positives first, then negatives.

    All cases for the AUC; only the positives for sensitivity, only the negatives for
    specificity.
    """
    positives = np.flatnonzero(design.truth)
    negatives = np.flatnonzero(~design.truth)
    if metric == "sensitivity":
        return positives
    if metric == "specificity":
        return negatives
    return np.concatenate([positives, negatives])


def leave_one_out(design: MRMCDesign, metric: Metric) -> tuple[FloatArray, FloatArray]:
    """Metric values ``(t r,)`` and leave-one-case-out values ``(t r, n)``.

    Columns are the jackknife cases of :func:`jackknife_cases`. A case that a reader did not
    read under a treatment leaves that value as it is.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    seen = design.observed.reshape(t * r, K)
    check_case_counts(design, metric)
    cases = jackknife_cases(design, metric)
    if metric != "empirical_auc":
        _check_binary(rows[seen], metric)
        hits = np.where(seen[:, cases], rows[:, cases], 0.0)
        if metric == "specificity":
            hits = np.where(seen[:, cases], 1.0 - hits, 0.0)
        counts = seen[:, cases].sum(axis=1, keepdims=True).astype(np.float64)
        values = hits.sum(axis=1, keepdims=True) / counts
        loo = np.where(seen[:, cases], (counts * values - hits) / (counts - 1.0), values)
        return values[:, 0], np.asarray(loo, dtype=np.float64)
    if design.fully_paired:
        place = placement_values(rows, design.truth)
        return place.auc, leave_one_out_auc(place)
    values = np.empty(t * r, dtype=np.float64)
    loo = np.empty((t * r, cases.size), dtype=np.float64)
    column = np.empty(K, dtype=np.intp)
    column[cases] = np.arange(cases.size)
    for g in range(t * r):
        read = np.flatnonzero(seen[g])
        place = placement_values(rows[g : g + 1, read], design.truth[read])
        values[g] = place.auc[0]
        loo[g] = values[g]
        deleted = leave_one_out_auc(place)[0]  # positives first, then negatives, as `read`
        order = np.concatenate([read[design.truth[read]], read[~design.truth[read]]])
        loo[g, column[order]] = deleted
    return values, loo


def jackknife_covariance(loo: FloatArray) -> FloatArray:
    """Jackknife covariance ``(n - 1) / n`` times the cross-products of centred LOO values."""
    n = loo.shape[1]
    centred = loo - loo.mean(axis=1, keepdims=True)
    return np.asarray((n - 1) / n * (centred @ centred.T), dtype=np.float64)


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


def unbiased_covariance_partial(design: MRMCDesign) -> FloatArray:
    """MRMCaov's ``unbiased_default`` covariance for data with missing reads (module notes)."""
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    seen = design.observed.reshape(t * r, K)
    groups = []
    for g in range(t * r):
        pos = np.flatnonzero(seen[g] & design.truth)
        neg = np.flatnonzero(seen[g] & ~design.truth)
        x = rows[g, pos][:, np.newaxis]
        y = rows[g, neg][np.newaxis, :]
        groups.append((pos, neg, (x > y).astype(np.float64) + 0.5 * (x == y)))
    size = t * r
    out = np.empty((size, size), dtype=np.float64)
    for a in range(size):
        pos_a, neg_a, psi_a = groups[a]
        for b in range(a + 1):
            pos_b, neg_b, psi_b = groups[b]
            _, ia, ib = np.intersect1d(pos_a, pos_b, assume_unique=True, return_indices=True)
            _, ja, jb = np.intersect1d(neg_a, neg_b, assume_unique=True, return_indices=True)
            m_a, n_a = psi_a.shape
            m_b, n_b = psi_b.shape
            p, q = ia.size, ja.size
            total = float(m_a * n_a * m_b * n_b)
            delta = total / (total - m_a * q * m_b - n_a * p * n_b + p * q)
            shared = (
                float(psi_a[ia].sum(axis=1) @ psi_b[ib].sum(axis=1))
                + float(psi_a[:, ja].sum(axis=0) @ psi_b[:, jb].sum(axis=0))
                - float(np.sum(psi_a[np.ix_(ia, ja)] * psi_b[np.ix_(ib, jb)]))
            )
            value = ((1.0 - delta) * psi_a.sum() * psi_b.sum() + delta * shared) / total
            out[a, b] = out[b, a] = value
    return out


def metric_and_covariance(
    design: MRMCDesign, metric: Metric, cov: CovMethod
) -> tuple[FloatArray, FloatArray]:
    """Metric values ``(t, r)`` and their covariance matrix over cases ``(t r, t r)``."""
    if cov not in COV_METHODS:
        raise ValueError(
            f"unknown covariance method {cov!r}: choose one of {', '.join(COV_METHODS)}"
        )
    if cov != "jackknife" and metric != "empirical_auc":
        raise ValueError(f"the {cov} covariance method needs metric empirical_auc")
    if cov == "delong" and not design.fully_paired:
        raise ValueError(
            f"the delong covariance method needs fully paired data (every reader reads every "
            f"case under every treatment), this design is {design.design} with reads missing: "
            "use --cov jackknife or unbiased"
        )
    t, r, _ = design.ratings.shape
    if design.n_positive < 2 or design.n_negative < 2:
        raise ValueError("need at least 2 positive and 2 negative cases")
    if cov == "jackknife" or not design.fully_paired:
        values, loo = leave_one_out(design, metric)
        if cov == "jackknife":
            covariance = jackknife_covariance(loo)
        else:
            covariance = unbiased_covariance_partial(design)
        return values.reshape(t, r), covariance
    # Fully paired AUC: the placement values give the metric and both closed-form covariances.
    rows = design.ratings.reshape(t * r, -1)
    place = placement_values(rows, design.truth)
    if cov == "delong":
        covariance = delong_covariance(place)
    else:
        covariance = unbiased_covariance(rows, design.truth, place)
    return place.auc.reshape(t, r), covariance
