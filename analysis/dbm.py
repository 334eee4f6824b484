"""Dorfman-Berbaum-Metz (DBM) analysis: ANOVA of jackknife pseudovalues with Hillis' df.

The jackknife pseudovalue of reader ``j``, treatment ``i`` and case ``k`` is
``Y_ijk = K theta_ij - (K - 1) theta_ij(-k)`` (``K`` cases, ``theta_ij(-k)`` the metric without
case ``k``, in closed form from placement values). A treatment x reader x case ANOVA of the
``Y_ijk`` (one observation per cell) gives the mean squares ``MS_T, MS_R, MS_C, MS_TR, MS_TC,
MS_RC, MS_TRC``, and (Hillis, Berbaum and Metz 2008):

RRRC
    ``F = MS_T / (MS_TR + max(MS_TC - MS_TRC, 0))`` on ``t - 1`` and
    ``ddf = (MS_TR + max(MS_TC - MS_TRC, 0))^2 / (MS_TR^2 / ((t - 1)(r - 1)))`` df; a difference
    of two treatment means has ``SE = sqrt(2 (MS_TR + max(MS_TC - MS_TRC, 0)) / (r K))``.
FRRC
    ``F = MS_T / MS_TC`` on ``t - 1`` and ``(t - 1)(K - 1)`` df, ``SE = sqrt(2 MS_TC / (r K))``.
RRFC
    ``F = MS_T / MS_TR`` on ``t - 1`` and ``(t - 1)(r - 1)`` df, ``SE = sqrt(2 MS_TR / (r K))``.

Single-treatment intervals use the mean squares of that treatment's pseudovalues alone: RRRC
``SE = sqrt((MS_R + max(MS_C - MS_RC, 0)) / (r K))`` with
``df = (MS_R + max(MS_C - MS_RC, 0))^2 / (MS_R^2 / (r - 1))``; FRRC ``sqrt(MS_C / (r K))`` on
``K - 1`` df; RRFC ``sqrt(MS_R / (r K))`` on ``r - 1`` df; clipped to [0, 1].

For sensitivity (specificity) the jackknife runs over the positive (negative) cases only, as in
the OR analysis, and ``K`` above is their number. DBM needs a fully crossed design; other
designs go to the OR analysis (``python -m analysis mrmc``), as MRMCaov analyses them.

For the empirical AUC (and the binary sensitivity and specificity) the pseudovalues average to
the metric itself, and DBM with Hillis' df gives exactly the OR results with jackknife
covariance (Hillis 2005; tested in ``tests/analysis/test_dbm.py``).

References
----------
Dorfman DD, Berbaum KS, Metz CE (1992). Receiver operating characteristic rating analysis:
generalization to the population of readers and patients with the jackknife method.
Investigative Radiology 27(9):723-731. doi:10.1097/00004424-199209000-00015
Hillis SL, Obuchowski NA, Schartz KM, Berbaum KS (2005). A comparison of the Dorfman-Berbaum-Metz
and Obuchowski-Rockette methods for receiver operating characteristic (ROC) data. Statistics in
Medicine 24(10):1579-1607. doi:10.1002/sim.2024
Hillis SL (2007). A comparison of denominator degrees of freedom methods for multiple observer
ROC analysis. Statistics in Medicine 26(3):596-619. doi:10.1002/sim.2532
Hillis SL, Berbaum KS, Metz CE (2008). Recent developments in the Dorfman-Berbaum-Metz procedure
for multireader ROC study analysis. Academic Radiology 15(5):647-661.
doi:10.1016/j.acra.2007.12.015
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from analysis.io import MRMCDesign, mrmc_design
from analysis.mrmc.covariance import Metric, leave_one_out
from analysis.mrmc.distributions import f_upper_p, t_quantile, t_two_sided_p
from analysis.mrmc.obuchowski_rockette import FACTORS, Factors, check_options
from analysis.mrmc.results import (
    Difference,
    GlobalTest,
    ReaderValue,
    SingleTreatment,
    _json_float,
    difference_records,
    inference_lines,
    inference_option_keys,
    inference_option_lines,
    json_record,
)

if TYPE_CHECKING:
    import pandas as pd

    from analysis.mrmc.noninferiority import NonInferiority

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DBMMeanSquares:
    """Mean squares of the treatment x reader x case ANOVA of pseudovalues."""

    T: float
    R: float
    C: float
    TR: float
    TC: float
    RC: float
    TRC: float


@dataclass(frozen=True)
class DBMVarComponents:
    """DBM variance components from the expected mean squares (untruncated)."""

    var_R: float
    var_C: float
    var_TR: float
    var_TC: float
    var_RC: float
    var_error: float


@dataclass(frozen=True)
class DBMResult:
    """Result of :func:`dbm_analysis`; :meth:`to_dict` is the ``dbm --json`` object."""

    metric: str
    factors: str
    alpha: float
    n_readers: int
    n_cases: int
    n_positive: int
    n_negative: int
    treatment_value: dict[str, float]
    mean_squares: DBMMeanSquares
    var_components: DBMVarComponents
    global_test: GlobalTest
    differences: tuple[Difference, ...]
    single_treatment: dict[str, SingleTreatment]
    # Per-reader values of a figure of merit computed apart from the pseudovalues (FROC).
    reader_value: tuple[ReaderValue, ...] = ()
    non_inferiority: NonInferiority | None = None
    adjust: str = "none"
    p_adjusted: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become null).

        ``non_inferiority`` and ``adjust`` (``p_adjusted`` in each difference) as in the OR
        result, only when asked for (:mod:`analysis.mrmc.noninferiority`); ``reader_value``
        only when a figure of merit carries it (FROC).
        """
        out = self._to_dict()
        if self.reader_value:
            out["reader_value"] = [json_record(value) for value in self.reader_value]
        return out

    def _to_dict(self) -> dict[str, Any]:
        return {
            "method": "DBM",
            "metric": self.metric,
            "factors": self.factors,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "treatment_value": {k: _json_float(v) for k, v in self.treatment_value.items()},
            "mean_squares": json_record(self.mean_squares),
            "var_components": json_record(self.var_components),
            "global_test": json_record(self.global_test),
            "differences": difference_records(self.differences, self.p_adjusted),
            "single_treatment": {k: json_record(v) for k, v in self.single_treatment.items()},
        } | inference_option_keys(self.non_inferiority, self.adjust, self.p_adjusted)

    def to_text(self) -> str:
        """A readable report of the DBM analysis."""
        test = self.global_test
        lines = [
            "Dorfman-Berbaum-Metz MRMC analysis (jackknife pseudovalues), Hillis df",
            f"metric {self.metric}, factors {self.factors}",
            f"{self.n_readers} readers, {self.n_cases} cases "
            f"({self.n_positive} positive, {self.n_negative} negative)",
            "",
            "treatment means: "
            + ", ".join(f"{k} {v:.6f}" for k, v in self.treatment_value.items()),
            "",
            "mean squares: "
            + ", ".join(f"{k} {v:.6g}" for k, v in asdict(self.mean_squares).items()),
            "variance components: "
            + ", ".join(f"{k} {v:.6g}" for k, v in asdict(self.var_components).items()),
            "",
            f"global test: F = {test.statistic:.4f}, df = ({test.df1}, {_num(test.df2, 2)}), "
            f"p = {test.p_value:.4f}",
        ]
        lines += inference_lines(self.differences, self.single_treatment, self.alpha)
        lines += inference_option_lines(self.differences, self.non_inferiority, self.p_adjusted)
        return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def pseudovalues(design: MRMCDesign, metric: Metric = "empirical_auc") -> FloatArray:
    """Jackknife pseudovalues ``(t, r, n)``: ``n theta - (n - 1) theta(-k)``.

    Over the ``n`` jackknife cases of :func:`analysis.mrmc.covariance.jackknife_cases` (all
    cases for the AUC, positives then negatives; only the positives for sensitivity, only the
    negatives for specificity), the same for every reader and treatment.
    """
    t, r, _ = design.ratings.shape
    theta, loo = leave_one_out(design, metric)
    n = loo.shape[1]
    return np.asarray((n * theta[:, np.newaxis] - (n - 1) * loo).reshape(t, r, n), dtype=np.float64)


def anova_mean_squares(y: FloatArray) -> DBMMeanSquares:
    """Mean squares of a ``t x r x K`` table with one observation per cell (``t >= 2``)."""
    t, r, K = y.shape
    mu = y.mean()
    m_t = y.mean(axis=(1, 2))
    m_r = y.mean(axis=(0, 2))
    m_c = y.mean(axis=(0, 1))
    m_tr = y.mean(axis=2)
    m_tc = y.mean(axis=1)
    m_rc = y.mean(axis=0)
    tr = m_tr - m_t[:, None] - m_r[None, :] + mu
    tc = m_tc - m_t[:, None] - m_c[None, :] + mu
    rc = m_rc - m_r[:, None] - m_c[None, :] + mu
    residual = (
        y
        - m_tr[:, :, None]
        - m_tc[:, None, :]
        - m_rc[None, :, :]
        + m_t[:, None, None]
        + m_r[None, :, None]
        + m_c[None, None, :]
        - mu
    )
    return DBMMeanSquares(
        T=r * K * float(np.sum((m_t - mu) ** 2)) / (t - 1),
        R=t * K * float(np.sum((m_r - mu) ** 2)) / (r - 1),
        C=t * r * float(np.sum((m_c - mu) ** 2)) / (K - 1),
        TR=K * float(np.sum(tr**2)) / ((t - 1) * (r - 1)),
        TC=r * float(np.sum(tc**2)) / ((t - 1) * (K - 1)),
        RC=t * float(np.sum(rc**2)) / ((r - 1) * (K - 1)),
        TRC=float(np.sum(residual**2)) / ((t - 1) * (r - 1) * (K - 1)),
    )


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def dbm_analysis(
    frame: pd.DataFrame,
    *,
    metric: Metric = "empirical_auc",
    factors: Factors = "RRRC",
    alpha: float = 0.05,
) -> DBMResult:
    """Dorfman-Berbaum-Metz MRMC analysis of jackknife pseudovalues with Hillis' df.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``reader, treatment, case, truth, rating``, fully crossed (see
        :func:`analysis.io.mrmc_design`).
    metric : {"empirical_auc", "sensitivity", "specificity"}
        Reader performance metric (binary 0/1 ratings for sensitivity and specificity).
    factors : {"RRRC", "FRRC", "RRFC"}
        Random readers and cases, fixed readers, or fixed cases.
    alpha : float
        ``1 - alpha`` is the confidence level.

    Returns
    -------
    DBMResult
        Mean squares, variance components, F test, pairwise differences and single-treatment
        intervals; formulas and references in the module docstring.
    """
    return dbm_analysis_design(mrmc_design(frame), metric=metric, factors=factors, alpha=alpha)


def dbm_analysis_design(
    design: MRMCDesign,
    *,
    metric: Metric = "empirical_auc",
    factors: Factors = "RRRC",
    alpha: float = 0.05,
) -> DBMResult:
    """:func:`dbm_analysis` on an already validated design."""
    check_options(metric, "jackknife", factors, alpha)
    t, r, _ = design.ratings.shape
    if t < 2:
        raise ValueError(f"need at least 2 treatments, got {t}")
    if r < 2:
        raise ValueError(f"need at least 2 readers, got {r}")
    if design.n_positive < 2 or design.n_negative < 2:
        raise ValueError("need at least 2 positive and 2 negative cases")
    if not design.fully_paired:
        raise ValueError(
            "DBM needs a fully crossed design (every reader reads every case under every "
            f"treatment), this one is {design.design} with reads missing: use `python -m "
            "analysis mrmc` (Obuchowski-Rockette, as MRMCaov) or `python -m analysis imrmc`"
        )
    return dbm_inference(
        pseudovalues(design, metric),
        treatments=design.treatments,
        n_positive=design.n_positive,
        n_negative=design.n_negative,
        metric=metric,
        factors=factors,
        alpha=alpha,
    )


def dbm_inference(
    y: FloatArray,
    *,
    treatments: Sequence[str],
    n_positive: int,
    n_negative: int,
    metric: str,
    factors: Factors = "RRRC",
    alpha: float = 0.05,
) -> DBMResult:
    """The DBM analysis of any figure of merit from its ``t x r x n`` jackknife pseudovalues.

    ``y[i, j, k] = n theta_ij - (n - 1) theta_ij(-k)`` over the ``n`` jackknife cases (ROC or
    FROC figures of merit alike); formulas in the module docstring.
    """
    t, r, K = y.shape
    ms = anova_mean_squares(y)
    components = DBMVarComponents(
        var_R=(ms.R - ms.TR - ms.RC + ms.TRC) / (t * K),
        var_C=(ms.C - ms.TC - ms.RC + ms.TRC) / (t * r),
        var_TR=(ms.TR - ms.TRC) / K,
        var_TC=(ms.TC - ms.TRC) / r,
        var_RC=(ms.RC - ms.TRC) / t,
        var_error=ms.TRC,
    )
    if factors == "RRRC":
        denominator = ms.TR + max(ms.TC - ms.TRC, 0.0)
        df2 = denominator**2 / (ms.TR**2 / ((t - 1) * (r - 1))) if ms.TR > 0 else math.inf
    elif factors == "FRRC":
        denominator = ms.TC
        df2 = float((t - 1) * (K - 1))
    else:
        denominator = ms.TR
        df2 = float((t - 1) * (r - 1))
    statistic = _ratio(ms.T, denominator)
    global_test = GlobalTest("F", statistic, t - 1, df2, f_upper_p(statistic, t - 1, df2))
    se = math.sqrt(2.0 * denominator / (r * K))
    quantile = t_quantile(1.0 - alpha / 2.0, df2)
    means = y.mean(axis=(1, 2))
    differences = []
    for a, b in combinations(range(t), 2):
        estimate = float(means[a] - means[b])
        differences.append(
            Difference(
                pair=f"{treatments[a]} - {treatments[b]}",
                estimate=estimate,
                se=se,
                df=df2,
                ci_lower=estimate - quantile * se,
                ci_upper=estimate + quantile * se,
                p_value=t_two_sided_p(_ratio(estimate, se), df2),
            )
        )
    single = {treatments[i]: _single_treatment(y[i], factors, alpha) for i in range(t)}
    return DBMResult(
        metric=metric,
        factors=factors,
        alpha=alpha,
        n_readers=r,
        n_cases=K,
        n_positive=n_positive,
        n_negative=n_negative,
        treatment_value={treatments[i]: float(means[i]) for i in range(t)},
        mean_squares=ms,
        var_components=components,
        global_test=global_test,
        differences=tuple(differences),
        single_treatment=single,
    )


def _single_treatment(y: FloatArray, factors: Factors, alpha: float) -> SingleTreatment:
    """Interval for one treatment from its ``r x K`` pseudovalues (module docstring)."""
    r, K = y.shape
    mu = float(y.mean())
    m_r = y.mean(axis=1)
    m_c = y.mean(axis=0)
    ms_r = K * float(np.sum((m_r - mu) ** 2)) / (r - 1)
    ms_c = r * float(np.sum((m_c - mu) ** 2)) / (K - 1)
    residual = y - m_r[:, None] - m_c[None, :] + mu
    ms_rc = float(np.sum(residual**2)) / ((r - 1) * (K - 1))
    df: float
    if factors == "RRRC":
        variance = ms_r + max(ms_c - ms_rc, 0.0)
        df = variance**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else math.inf
    elif factors == "FRRC":
        variance, df = ms_c, float(K - 1)
    else:
        variance, df = ms_r, float(r - 1)
    se = math.sqrt(variance / (r * K))
    half = t_quantile(1.0 - alpha / 2.0, df) * se
    return SingleTreatment(
        estimate=mu,
        se=se,
        df=df,
        ci_lower=max(mu - half, 0.0),
        ci_upper=min(mu + half, 1.0),
    )


__all__ = [
    "FACTORS",
    "DBMResult",
    "dbm_analysis",
    "dbm_analysis_design",
    "dbm_inference",
    "pseudovalues",
]
