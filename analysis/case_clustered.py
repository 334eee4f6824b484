"""Case-clustered inference for binary reads: pooled proportions, OR on them, GEE on counts.

The reads of a reader study are correlated within a case: several readers read it, in both
arms, and a case may carry several findings. Three tools here treat the case as the unit:

* :func:`clustered_proportion` - a pooled proportion ``events / n`` with a Wilson interval on the
  effective sample size ``n / deff``, ``deff`` the design effect of the case-clustered
  (ratio-estimator) variance ``K / (K - 1) sum_k (e_k - p n_k)^2 / n^2`` over the ``K`` cases,
  truncated below at 1 (Korn & Graubard 1998). The interval always contains the estimate.
* :func:`or_pooled_proportion` - the Obuchowski-Rockette RRRC analysis (Hillis df) of
  ``theta_ij``, reader ``j``'s pooled proportion of events over all of its reads in arm ``i``
  (e.g. a miss rate over every truth-present finding of every case). Its error covariance is
  the jackknife over **cases**: deleting case ``k`` removes all of its reads (every finding),
  ``theta_ij(-k) = (A_ij - a_ijk) / (N_ij - n_ijk)``, and
  ``cov = (K - 1) / K sum_k (theta(-k) - mean)(theta(-k) - mean)'`` over the ``K`` cases that
  hold reads. With one finding per case this is MRMCaov's ``binary_sens`` / ``binary_spec``
  jackknife (over the cases of the truth class). The OR formulas are those of
  :mod:`analysis.mrmc.obuchowski_rockette` (RRRC; single-arm intervals clipped to [0, 1]).
* :func:`gee_logit_exchangeable` - the GEE logistic model ``logit P(event) = b0 + b1 x``
  (``x`` a 0/1 arm indicator) with clusters = cases, an exchangeable working correlation and the
  robust (sandwich) covariance (Liang & Zeger 1986). With one binary covariate every cluster is
  summarised by four counts (reads and events per arm), so the estimating equations, the
  moment estimator of the working correlation and the sandwich are sums over clusters of
  closed-form terms: no per-read work after one ``bincount``. The estimators are those of
  ``statsmodels.genmod.GEE`` with ``Exchangeable()`` (scale and correlation moments with
  ``ddof = 2``), solved to a tighter tolerance.

References
----------
Korn EL, Graubard BI (1998). Confidence intervals for proportions with small expected number of
positive counts estimated from survey data. Survey Methodology 24(2):193-201.
Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
Biometrika 73(1):13-22. doi:10.1093/biomet/73.1.13
Obuchowski NA, Rockette HE (1995). Commun Stat Simul Comput 24(2):285-308.
doi:10.1080/03610919508813243
Hillis SL (2007). Stat Med 26(3):596-619. doi:10.1002/sim.2532
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from analysis.mrmc.distributions import t_two_sided_p
from analysis.mrmc.obuchowski_rockette import (
    interval,
    mean_squares,
    ratio,
    rrrc_denominator,
    single_treatment_interval,
)
from analysis.mrmc.results import Difference, SingleTreatment

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PooledOR:
    """OR RRRC analysis of per reader x arm pooled proportions (case jackknife)."""

    arms: tuple[SingleTreatment, SingleTreatment]
    difference: Difference  # pair "1 - 0": arm 1 - arm 0
    n_readers: int
    n_cases: int


@dataclass(frozen=True)
class GeeFit:
    """GEE logistic fit: ``(b0, b1)``, robust covariance, working correlation, clusters."""

    params: tuple[float, float]
    cov: FloatArray
    rho: float
    n_clusters: int
    iterations: int


def compact_codes(codes: IntArray) -> tuple[IntArray, int]:
    """Codes renumbered 0..n-1 over the values present (order kept), and n."""
    present = np.bincount(codes) > 0
    index = np.cumsum(present) - 1
    return index[codes].astype(np.int64), int(present.sum())


def clustered_proportion(
    cluster: IntArray, event: NDArray[np.bool_], alpha: float
) -> tuple[float, float, float]:
    """Pooled proportion and its Wilson interval on the case-clustered effective sample size.

    Parameters
    ----------
    cluster
        Case code of each read.
    event
        Whether each read is an event.
    alpha
        Two-sided level.

    Returns
    -------
    tuple
        ``(p, lower, upper)``; NaN when there are no reads, and a NaN interval with fewer than
        two cases (no clustered variance). Formula: module docstring.
    """
    n = event.size
    if n == 0:
        return math.nan, math.nan, math.nan
    p = float(event.mean())
    codes, k = compact_codes(cluster)
    if k < 2:
        return p, math.nan, math.nan
    n_k = np.bincount(codes, minlength=k).astype(np.float64)
    e_k = np.bincount(codes, weights=event.astype(np.float64), minlength=k)
    var = k / (k - 1) * float(np.sum((e_k - p * n_k) ** 2)) / n**2
    binomial = p * (1.0 - p) / n
    deff = max(var / binomial, 1.0) if binomial > 0 else 1.0
    n_eff = n / deff
    z = -float(special.ndtri(alpha / 2.0))
    denom = 1.0 + z**2 / n_eff
    centre = (p + z**2 / (2.0 * n_eff)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n_eff + z**2 / (4.0 * n_eff**2)) / denom
    return p, max(centre - half, 0.0), min(centre + half, 1.0)


def or_pooled_proportion(
    reader: IntArray, arm: IntArray, case: IntArray, event: NDArray[np.bool_], alpha: float
) -> PooledOR:
    """OR RRRC analysis of each reader's pooled proportion per arm, case-level jackknife.

    Parameters
    ----------
    reader, arm, case
        Codes of each read (``arm`` 0 or 1); pass only the reads that define the proportion
        (e.g. the reads of truth-present findings for a miss rate). The design should be fully
        crossed (every reader reads every case's findings in both arms): the caller checks it.
    event
        Whether each read is an event.
    alpha
        Two-sided level.

    Returns
    -------
    PooledOR
        Per arm the reader-averaged proportion with its RRRC single-arm interval (clipped to
        [0, 1]) and the ``arm 1 - arm 0`` difference with Hillis df. Formulas: module docstring
        and :mod:`analysis.mrmc.obuchowski_rockette`.

    Raises
    ------
    ValueError
        Fewer than two readers or two cases, or a reader without reads in an arm.
    """
    j, r = compact_codes(reader)
    k, n_cases = compact_codes(case)
    if r < 2:
        raise ValueError(f"need at least 2 readers, got {r}")
    if n_cases < 2:
        raise ValueError(f"need at least 2 cases with reads, got {n_cases}")
    t = 2
    cell = (arm * r + j) * n_cases + k
    size = t * r * n_cases
    n = np.bincount(cell, minlength=size).astype(np.float64).reshape(t * r, n_cases)
    a = np.bincount(cell, weights=event.astype(np.float64), minlength=size).reshape(t * r, -1)
    n_tot, a_tot = n.sum(axis=1), a.sum(axis=1)
    if np.any(n_tot == 0):
        raise ValueError("every reader needs reads in both arms")
    values = a_tot / n_tot
    left = n_tot[:, None] - n
    if np.any(left == 0):
        raise ValueError("a reader's reads in an arm all come from one case")
    loo = ((a_tot[:, None] - a) / left).reshape(t, r, n_cases)
    centred = loo - loo.mean(axis=2, keepdims=True)
    factor = (n_cases - 1) / n_cases
    # RRRC needs only averages of the covariances between different readers, so sum over
    # readers first: sum_{j != j'} c_ij c_i'j' = S_i S_i' - sum_j c_ij c_i'j, per case
    by_arm = centred.sum(axis=1)  # (t, K)
    total = by_arm @ by_arm.T
    same_reader = np.einsum("ijk,ljk->il", centred, centred)
    between = factor * (total - same_reader) / (r * (r - 1))  # (t, t): cov2_i and cov3
    cov2 = float(np.mean(np.diag(between)))
    cov3 = float(between[0, 1])

    table = values.reshape(t, r)
    denominator, df2 = rrrc_denominator(mean_squares(table), cov2, cov3, t, r)
    means = table.mean(axis=1)
    estimate = float(means[1] - means[0])
    se = math.sqrt(2.0 / r * denominator)
    lower, upper = interval(estimate, se, df2, alpha, clip=False)
    p_value = t_two_sided_p(ratio(estimate, se), df2)
    difference = Difference("1 - 0", estimate, se, df2, lower, upper, p_value)
    # the single-arm RRRC interval needs only the arm's between-reader covariance
    arm0, arm1 = (
        single_treatment_interval(table[i], math.nan, float(between[i, i]), "RRRC", alpha)
        for i in range(t)
    )
    return PooledOR((arm0, arm1), difference, r, n_cases)


def gee_logit_exchangeable(
    cluster: IntArray,
    x: NDArray[np.bool_],
    y: NDArray[np.bool_],
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> GeeFit:
    """GEE ``logit P(y) = b0 + b1 x``, exchangeable working correlation, sandwich covariance.

    Parameters
    ----------
    cluster
        Cluster (case) code of each observation.
    x
        The binary covariate (assisted arm).
    y
        The binary response (event).
    tol, max_iter
        Stop when the Fisher-scoring step is below ``tol`` (L2 norm).

    Returns
    -------
    GeeFit
        The same estimates as ``statsmodels.api.GEE(y, [1, x], groups=cluster,
        family=Binomial(), cov_struct=Exchangeable())`` at convergence.

    Raises
    ------
    ValueError
        No observation, or no events or all events in an arm (not estimable).
    """
    codes, k = compact_codes(cluster)
    xi = x.astype(np.int64)
    cell = codes * 2 + xi
    n = np.bincount(cell, minlength=2 * k).astype(np.float64).reshape(k, 2)
    e = np.bincount(cell, weights=y.astype(np.float64), minlength=2 * k).reshape(k, 2)
    n_arm, e_arm = n.sum(axis=0), e.sum(axis=0)
    if np.any(n_arm == 0) or np.any(e_arm == 0) or np.any(e_arm == n_arm):
        raise ValueError("no events or all events in an arm: the logistic model is not estimable")
    m = n.sum(axis=1)
    n_obs = float(m.sum())
    n_pairs = float(np.sum(m * (m - 1) / 2.0))
    p0 = e_arm / n_arm
    logit = np.log(p0 / (1.0 - p0))
    beta = np.array([logit[0], logit[1] - logit[0]])  # the independence (GLM) solution

    def pieces(b: FloatArray, rho: float) -> tuple[FloatArray, FloatArray]:
        mu = special.expit(np.array([b[0], b[0] + b[1]]))
        v = mu * (1.0 - mu)
        s = np.sqrt(v)
        resid = e - n * mu  # (k, 2) residual sums per arm
        big_s = resid[:, 0] / s[0] + resid[:, 1] / s[1]
        c = rho / (1.0 - rho) / (1.0 + rho * (m - 1.0))
        g = np.column_stack([n[:, 0] * s[0] + n[:, 1] * s[1], n[:, 1] * s[1]])
        u = (
            np.column_stack([resid.sum(axis=1), resid[:, 1]]) / (1.0 - rho)
            - (c * big_s)[:, None] * g
        )
        nv0, nv1 = n[:, 0] * v[0], n[:, 1] * v[1]
        b00 = (nv0 + nv1) / (1.0 - rho) - c * g[:, 0] ** 2
        b01 = nv1 / (1.0 - rho) - c * g[:, 0] * g[:, 1]
        b11 = nv1 / (1.0 - rho) - c * g[:, 1] ** 2
        bread = np.array([[b00.sum(), b01.sum()], [b01.sum(), b11.sum()]])
        return u, bread

    def correlation(b: FloatArray) -> float:
        mu = special.expit(np.array([b[0], b[0] + b[1]]))
        s = np.sqrt(mu * (1.0 - mu))
        # Pearson residuals: (1 - mu)/s for an event, -mu/s otherwise
        ssr = (e * ((1.0 - mu) / s) ** 2 + (n - e) * (mu / s) ** 2).sum(axis=1)
        total = ((e - n * mu) / s).sum(axis=1)
        scale = float(ssr.sum()) / (n_obs - 2.0)
        if n_pairs - 2.0 <= 0 or scale <= 0:
            return 0.0
        return float(np.sum((total**2 - ssr) / 2.0)) / scale / (n_pairs - 2.0)

    rho = correlation(beta)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        u, bread = pieces(beta, rho)
        step = np.linalg.solve(bread, u.sum(axis=0))
        beta = beta + step
        if float(np.sqrt(np.sum(step**2))) < tol:
            break
        rho = correlation(beta)
    u, bread = pieces(beta, rho)
    inv = np.linalg.inv(bread)
    cov = inv @ (u.T @ u) @ inv
    return GeeFit((float(beta[0]), float(beta[1])), cov, rho, k, iterations)
