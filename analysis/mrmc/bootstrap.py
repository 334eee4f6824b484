"""Bootstrap covariance of reader x treatment figures of merit over cases, for the OR model.

Estimand: the ``(t r) x (t r)`` covariance over the population of cases of the metric values
``theta_ij`` (index ``i r + j``), as the other estimators of :mod:`analysis.mrmc.covariance`.

Method (Efron and Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 6,
doi:10.1201/9780429246593; Obuchowski and Rockette 1995, doi:10.1080/03610919508813243):
each of ``B`` replicates draws the positive cases with replacement from the positives and the
negative cases from the negatives, so every replicate keeps the class sizes ``m`` and ``n``;
every reader and treatment is scored on the same replicate, which keeps their correlation. The
covariance is the sample covariance of the replicate values, divisor ``B - 1``:
``cov(theta_a, theta_b) = sum_b (theta_a^b - mean_a)(theta_b^b - mean_b) / (B - 1)``.
The metric values themselves are those of the original data. A metric that uses one class only
resamples that class (sensitivity the positives, specificity the negatives), as RJafroc does
for its ``HrSe`` / ``HrSp`` figures of merit.

This is RJafroc's bootstrap (``EstimateVarCov`` in ``R/StOldCode.R`` of RJafroc 2.1.3: per
replicate ``ceiling(runif(K1) * K1)`` non-diseased then ``ceiling(runif(K2) * K2)`` diseased
cases, the covariance from R's ``cov()`` without inflation, default 200 replicates). Where the
project differs: replicates are drawn with numpy's seeded generator (``seed`` 0 and 2000
replicates by default, so a run is reproducible and the Monte Carlo error of the components is
about ``sqrt(2 / B)``, 3%, of their size), so results cannot equal an R run draw for draw; the
tests feed the indices R drew to :func:`bootstrap_covariance` instead and match RJafroc to 1e-6.
RJafroc 2.1.3's own bootstrap does not run: ``UtilORVarComp(covEstMethod = "bootstrap")`` stops
with "code needs fixing", and ``StOldCode(method = "OR", covEstMethod = "bootstrap")`` calls
``FOM2ORVarComp`` without its ``flag`` argument ("argument "flag" is missing") and would then read
the fields ``Cov$var``, ``Cov$cov1`` of a list whose fields are ``Var``, ``Cov1`` (NULL);
``tests/data/bootstrap_golden.R`` runs it with both corrected.

Designs with missing reads: the cases are resampled as above and each reader x treatment's
metric uses the resampled cases it read (a case drawn twice counts twice); its class sizes then
vary between replicates. A replicate in which a reader x treatment read no case of a class the
metric needs raises ``ValueError`` (use the jackknife for such sparse designs).

Speed: the empirical AUC and the proportions are computed for all replicates at once from the
case counts of each replicate, without re-sorting: each reader x treatment's positives and
negatives are sorted once, each positive's tie-group bounds among the negatives found once
(``searchsorted``), and a replicate's AUC is ``sum_i c_i (L_i + H_i) / (2 M N)`` over positives
``i`` with multiplicity ``c_i``, where ``L_i`` and ``H_i`` are the cumulative counts of the
negatives below, and below or tied with, positive ``i``, and ``M``, ``N`` the replicate's class
sizes. Cost ``O(t r B K)``, in chunks of replicates small enough to stay in cache; 2000
replicates of Van Dyke take about 0.05 s (``benchmarks/bench_bootstrap.py``, results in
``benchmarks/bootstrap.md``). Any other metric enters through :func:`design_replicates`, which
scores each resampled design with the metric's own function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from analysis.io import MRMCDesign
from analysis.mrmc.covariance import METRICS, Metric, _check_binary, check_case_counts

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
#: Metric values of every replicate: (design, case indices ``(B, K)``) -> values ``(B, t r)``.
ReplicateValues = Callable[[MRMCDesign, IntArray], FloatArray]

DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0
_CHUNK_ELEMENTS = 200_000  # replicates x cases at once: small enough to stay in cache (3x faster)


def bootstrap_indices(
    truth: NDArray[np.bool_],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    *,
    positives: bool = True,
    negatives: bool = True,
) -> IntArray:
    """Case indices of ``n_boot`` replicates drawn with replacement within each truth class.

    Returns an ``(n_boot, K)`` array: per row the ``m`` positive cases drawn from the
    positives, then the ``n`` negatives drawn from the negatives. A class that is not resampled
    (``positives=False`` or ``negatives=False``) appears once each, in its own order.
    """
    if n_boot < 2:
        raise ValueError(f"the bootstrap needs at least 2 replicates, got {n_boot}")
    rng = np.random.default_rng(seed)
    blocks = []
    for cases, resample in (
        (np.flatnonzero(truth), positives),
        (np.flatnonzero(~truth), negatives),
    ):
        if resample:
            blocks.append(cases[rng.integers(0, cases.size, size=(n_boot, cases.size))])
        else:
            blocks.append(np.broadcast_to(cases, (n_boot, cases.size)))
    return np.concatenate(blocks, axis=1).astype(np.intp)


def case_counts(indices: IntArray, n_cases: int) -> FloatArray:
    """How many times each case is drawn in each replicate: ``(B, K)`` from ``(B, n)`` indices."""
    b = indices.shape[0]
    flat = (indices + n_cases * np.arange(b)[:, np.newaxis]).ravel()
    return np.bincount(flat, minlength=b * n_cases).reshape(b, n_cases).astype(np.float64)


def _sorted_layout(
    ratings: FloatArray, truth: NDArray[np.bool_]
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Positives and negatives in rating order, and each positive's tie-group bounds.

    Returns ``(pos, neg, lo, hi)``: the case positions of the positives and of the negatives,
    each sorted by rating, and for each positive the number of negatives rated below it
    (``lo``) and below or tied with it (``hi``), both counted in ``neg``'s order.
    """
    order = np.argsort(ratings, kind="stable")
    positive = truth[order]
    pos, neg = order[positive], order[~positive]
    neg_ratings = ratings[neg]
    pos_ratings = ratings[pos]
    lo = np.searchsorted(neg_ratings, pos_ratings, side="left")
    hi = np.searchsorted(neg_ratings, pos_ratings, side="right")
    return pos, neg, lo.astype(np.intp), hi.astype(np.intp)


def _auc_of_counts(
    layout: tuple[IntArray, IntArray, IntArray, IntArray], counts: FloatArray
) -> FloatArray:
    """Empirical AUC of one rating vector under case multiplicities ``counts`` ``(B, K)``.

    ``sum_i c_i (N_below(i) + N_tied(i) / 2) / (M N)`` with ``N_below``, ``N_tied`` the
    count-weighted negatives below and tied with positive ``i``: a cumulative sum of the
    negatives' counts in rating order, read at each positive's tie-group bounds.
    """
    pos, neg, lo, hi = layout
    c_pos = counts[:, pos]
    below = np.zeros((counts.shape[0], neg.size + 1), dtype=np.float64)
    np.cumsum(counts[:, neg], axis=1, out=below[:, 1:])
    twice_score = below[:, lo] + below[:, hi]
    m = c_pos.sum(axis=1)
    n = below[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(
            0.5 * np.einsum("bi,bi->b", c_pos, twice_score) / (m * n), dtype=np.float64
        )


def auc_replicates(design: MRMCDesign, indices: IntArray) -> FloatArray:
    """Empirical AUC of every reader x treatment on every replicate, ``(B, t r)``.

    NaN where a reader x treatment read no case of a class in the replicate.
    """
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    seen = design.observed.reshape(t * r, K)
    layouts = []
    for g in range(t * r):
        read = np.flatnonzero(seen[g])
        pos, neg, lo, hi = _sorted_layout(rows[g, read], design.truth[read])
        layouts.append((read[pos], read[neg], lo, hi))
    b = indices.shape[0]
    out = np.empty((b, t * r), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // K)
    for first in range(0, b, step):
        counts = case_counts(indices[first : first + step], K)
        for g, layout in enumerate(layouts):
            out[first : first + step, g] = _auc_of_counts(layout, counts)
    return out


def proportion_replicates(design: MRMCDesign, indices: IntArray, metric: Metric) -> FloatArray:
    """Sensitivity or specificity of every reader x treatment on every replicate, ``(B, t r)``."""
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)
    seen = design.observed.reshape(t * r, K)
    _check_binary(rows[seen], metric)
    cls = design.truth if metric == "sensitivity" else ~design.truth
    used = seen & cls[np.newaxis, :]
    hits = np.where(used, rows if metric == "sensitivity" else 1.0 - np.nan_to_num(rows), 0.0)
    counts = case_counts(indices, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((counts @ hits.T) / (counts @ used.T), dtype=np.float64)


def resample_design(design: MRMCDesign, index: IntArray) -> MRMCDesign:
    """The design restricted to the cases ``index`` (with repetition), as one replicate."""
    return replace(
        design,
        ratings=design.ratings[:, :, index],
        observed=design.observed[:, :, index],
        truth=design.truth[index],
        cases=tuple(design.cases[k] for k in index),
    )


def design_replicates(values_of: Callable[[MRMCDesign], FloatArray]) -> ReplicateValues:
    """Replicate values of any metric from its ``t x r`` values of a design.

    ``values_of(design)`` returns the metric's ``(t, r)`` values; each replicate is scored on
    :func:`resample_design`. Slower than the built-in vectorised paths, exact for any metric.
    """

    def replicates(design: MRMCDesign, indices: IntArray) -> FloatArray:
        rows = [np.ravel(values_of(resample_design(design, index))) for index in indices]
        return np.asarray(rows, dtype=np.float64)

    return replicates


def metric_replicates(metric: Metric) -> ReplicateValues:
    """The vectorised replicate values of a built-in metric."""
    if metric == "empirical_auc":
        return auc_replicates
    return lambda design, indices: proportion_replicates(design, indices, metric)


def bootstrap_covariance(
    design: MRMCDesign, indices: IntArray, replicate_values: ReplicateValues
) -> FloatArray:
    """Sample covariance (divisor ``B - 1``) of the replicate values on ``indices``.

    Raises
    ------
    ValueError
        When a replicate leaves a reader x treatment without a case of a class it needs.
    """
    values = replicate_values(design, indices)
    bad = ~np.isfinite(values)
    if bad.any():
        b, g = (int(axis[0]) for axis in np.nonzero(bad))
        r_count = design.ratings.shape[1]
        raise ValueError(
            f"bootstrap replicate {b + 1}: reader {design.readers[g % r_count]} under treatment "
            f"{design.treatments[g // r_count]} read no case of a truth class its metric needs "
            "in the resampled cases; use --cov jackknife for this design"
        )
    return np.asarray(np.cov(values, rowvar=False, ddof=1), dtype=np.float64).reshape(
        values.shape[1], values.shape[1]
    )


def bootstrap_metric_and_covariance(
    design: MRMCDesign,
    metric: Metric | str,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    indices: IntArray | None = None,
    replicate_values: ReplicateValues | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Metric values ``(t, r)`` and their bootstrap covariance ``(t r, t r)`` (module notes).

    Parameters
    ----------
    design : MRMCDesign
        The validated reads.
    metric : str
        A built-in metric (``empirical_auc``, ``sensitivity``, ``specificity``) or the name of
        a metric whose ``replicate_values`` are given.
    n_boot, seed : int
        Number of replicates and the seed of numpy's generator that draws them.
    indices : ndarray of int, shape (B, K), optional
        The replicates' case indices (into the design's cases), instead of drawing them: to
        reproduce another program's replicates.
    replicate_values : callable, optional
        The metric's values on every replicate (:data:`ReplicateValues`); required for a metric
        that is not built in (wrap its ``t x r`` values function with
        :func:`design_replicates`).

    Raises
    ------
    ValueError
        For fewer than 2 replicates, a reader x treatment with fewer than 2 cases of a class
        its metric needs, or a replicate that leaves one without any.
    """
    if replicate_values is None:
        if metric not in METRICS:
            raise ValueError(
                f"unknown metric {metric!r} for the bootstrap: choose one of {', '.join(METRICS)}"
            )
        replicate_values = metric_replicates(metric)
    if metric in METRICS:
        check_case_counts(design, metric)
    t, r, K = design.ratings.shape
    if indices is None:
        indices = bootstrap_indices(
            design.truth,
            n_boot,
            seed,
            positives=metric != "specificity",
            negatives=metric != "sensitivity",
        )
    values = replicate_values(design, np.arange(K, dtype=np.intp)[np.newaxis, :])[0]
    return values.reshape(t, r), bootstrap_covariance(design, indices, replicate_values)
