"""iMRMC's U-statistic MRMC analysis of the empirical AUC, for any design with missing reads.

This is the analysis of ``doIMRMC`` in the iMRMC R package 2.1.2 (its pure-R engine,
``R/doAUCMRMC.R``), reproduced number for number; a missing read is simply an absent row.

Estimand and estimator. Reader ``r`` in treatment ``t`` has the success
``s(i, j) = 1, 1/2, 0`` as its rating of positive case ``j`` is above, equal to or below its
rating of negative case ``i``, defined for the (negative, positive) pairs it read. The
reader-averaged AUC of a treatment is the mean of ``s`` over every read pair of every reader,
``sum_r sum_ij s / sum_r n0_r n1_r`` (readers weighted by the pairs they read; the plain mean of
the reader AUCs when the design is fully crossed). Its variance, and the covariance of two
treatments, is ``sum_k c_k M_k`` over eight moments ``M_1 .. M_8`` (same or different reader,
same or different negative case, same or different positive case) with coefficients ``c_k``
that follow from the design alone (Gallas 2006; Gallas and Brown 2008; Gallas et al. 2009).
The moments are U-statistics, hence unbiased: each averages products of two successes that
share exactly the stated readers and cases, over the reads where both exist. They come from sums
over reader pairs of products of per-case success sums (placement values) and of the success
matrices themselves (:mod:`analysis.mrmc.imrmc_moments`).

Variance reported. The main numbers are iMRMC's ``Ustat`` table, the unbiased U-statistic
variance, as ``doIMRMC`` returns first; its ``MLEstat`` table (V-statistic moments, those of
the empirical distribution, with the same design coefficients) is kept in
:attr:`IMRMCResult.mle_single_treatment` and :attr:`IMRMCResult.mle_differences`. An unbiased
variance can be negative on small or sparsely read data (with missing reads the MLE one too):
then its df, interval and p-value are null (iMRMC: NA) and a note says so.

Degrees of freedom. ``df`` is iMRMC's ``dfBDG``, a Satterthwaite-type approximation,
``var^2 / (B_N^2 / df_N^3 + B_D^2 / df_D^3 + B_R^2 / df_R^3)``, where ``B_N, B_D, B_R`` are the
negative-case, positive-case and reader components of the BCK decomposition (Gallas et al.
2009, eq. 19) computed from the MLE (biased) moments, ``df_N, df_D, df_R`` are
``round(1 / c - 1)`` of their coefficients, and the result is raised to
``min(df_N, df_D, df_R)`` when below it (Gaylor and Hopper 1969). For a difference
each ``df_x`` is the smaller of the two treatments'. Intervals and p-values use a t
distribution with ``floor(df)`` degrees of freedom, and the normal distribution when
``df > 50``, as iMRMC's ``hypothesisTest_t``; single-treatment intervals are not clipped to
[0, 1] (iMRMC does not clip).

iMRMC and MRMCaov on missing reads. MRMCaov 0.3.0 (and ``python -m analysis mrmc``) computes
each reader's AUC from the reads it made, averages the readers with equal weight, and puts
jackknife (or unbiased) covariances over the existing reads into the Obuchowski-Rockette model
with Hillis' df; iMRMC pools every read (negative, positive) pair, weighting each reader by the
pairs it read, and takes the variance from U-statistic moments whose coefficients come from the
design, with the BDG df. On ``tests/data/imrmc_missing.csv`` (a quarter of Van Dyke's reads
removed) ``mrmc`` gives the difference SE 0.0184 on 25.7 df, this command 0.0344 on 6.3 df.
This command follows iMRMC, by definition: it is iMRMC's analysis, checked against ``doIMRMC``
(``tests/data/imrmc_golden.json``), and its moment estimator is unbiased for any pattern of
missing reads without a model of the design (Gallas and Brown 2008;
``benchmarks/validate_imrmc.md``).

References
----------
Gallas BD (2006). One-shot estimate of MRMC variance: AUC. Academic Radiology 13(3):353-362.
doi:10.1016/j.acra.2005.11.030
Gallas BD, Bandos A, Samuelson FW, Wagner RF (2009). A framework for random-effects ROC analysis:
biases with the bootstrap and other variance estimators. Communications in Statistics - Theory
and Methods 38(15):2586-2603. doi:10.1080/03610920802610084
Gallas BD, Brown DG (2008). Reader studies for validation of CAD systems. Neural Networks
21(2-3):387-397. doi:10.1016/j.neunet.2007.12.013
Gaylor DW, Hopper FN (1969). Estimating the degrees of freedom for linear combinations of mean
squares by Satterthwaite's formula. Technometrics 11(4):691-706. doi:10.1080/00401706.1969.10490732
Gallas BD. iMRMC: Multi-Reader, Multi-Case Analysis Methods (ROC, Agreement, and Other
Metrics). R package version 2.1.2, github.com/DIDSR/iMRMC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from analysis.io import mrmc_reads
from analysis.mrmc.distributions import t_quantile, t_two_sided_p
from analysis.mrmc.imrmc_moments import moments as success_moments
from analysis.mrmc.imrmc_results import IMRMCDifference, IMRMCResult, IMRMCSingle
from analysis.mrmc.results import ReaderValue

if TYPE_CHECKING:
    import pandas as pd

FloatArray = NDArray[np.float64]

# iMRMC uses the normal distribution instead of t when df exceeds this.
_NORMAL_ABOVE_DF = 50.0
# Biased (V-statistic) sums -> unbiased (U-statistic) sums, iMRMC doAUCmrmcCov.
_B = np.array(
    [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [-1, 1, 0, 0, 0, 0, 0, 0],
        [-1, 0, 1, 0, 0, 0, 0, 0],
        [1, -1, -1, 1, 0, 0, 0, 0],
        [-1, 0, 0, 0, 1, 0, 0, 0],
        [1, -1, 0, 0, -1, 1, 0, 0],
        [1, 0, -1, 0, -1, 0, 1, 0],
        [-1, 1, 1, -1, 1, -1, -1, 1],
    ],
    dtype=np.float64,
)
# BDG moments -> BCK components (N, D, ND, R, NR, DR, RND), Gallas et al. (2009) eq. 19.
_B_ALPHA = np.array(
    [
        [0, 0, 0, 0, 0, 0, 1, -1],
        [0, 0, 0, 0, 0, 1, 0, -1],
        [0, 0, 0, 0, 1, -1, -1, 1],
        [0, 0, 0, 1, 0, 0, 0, -1],
        [0, 0, 1, -1, 0, 0, -1, 1],
        [0, 1, 0, -1, 0, -1, 0, 1],
        [1, -1, -1, 1, -1, 1, 1, -1],
    ],
    dtype=np.float64,
)
# BDG coefficients -> BCK coefficients.
_B_BDG2BCK = np.array(
    [
        [1, 0, 1, 0, 1, 0, 1, 0],
        [1, 1, 0, 0, 1, 1, 0, 0],
        [1, 0, 0, 0, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.float64,
)
_N, _D, _R = 0, 1, 3  # rows of the BCK components used for the df


@dataclass(frozen=True)
class _Layout:
    """Validated reads as arrays: treatment x reader x (negative | positive) case."""

    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    neg: FloatArray  # (T, R, K0) ratings of negative cases, NaN where not read
    pos: FloatArray  # (T, R, K1)
    n_cases: int


@dataclass(frozen=True)
class _Cov:
    """iMRMC's ``doAUCmrmcCov`` output for one treatment pair."""

    cov: float
    cov_biased: float
    bck_biased: FloatArray  # (7,)
    df_nd_r: tuple[float, float, float]
    df: float
    df_biased: float


def imrmc_analysis(frame: pd.DataFrame, *, alpha: float = 0.05) -> IMRMCResult:
    """iMRMC U-statistic MRMC analysis of the empirical AUC (``doIMRMC``, iMRMC 2.1.2).

    Parameters
    ----------
    frame
        One row per read: ``reader, treatment, case, truth, rating`` (see
        :func:`analysis.io.read_mrmc_csv`). Any design: reads that did not happen are absent
        rows.
    alpha
        1 - confidence level of the intervals (iMRMC's ``significance``).

    Returns
    -------
    IMRMCResult
        Reader-averaged AUC per treatment with its U-statistic variance, BDG df and interval,
        every pairwise difference (named ``"a - b"`` in order of first appearance) with its
        p-value, the MLE counterparts, and notes on degenerate data.

    Raises
    ------
    ValueError
        On a bad column or value, a repeated read, a case with two truths, a treatment with no
        reads, a reader who read one truth class only, or fewer than 2 positive or 2 negative
        cases.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    layout, notes = _layout(frame)
    moments = success_moments(layout.neg, layout.pos)
    n_t = len(layout.treatments)
    covs = {
        (t, u): _cov(moments.numer[t, u], moments.denom[t, u])
        for t in range(n_t)
        for u in range(t, n_t)
    }
    single: dict[str, IMRMCSingle] = {}
    single_mle: dict[str, IMRMCSingle] = {}
    for t, name in enumerate(layout.treatments):
        c = covs[t, t]
        auc = float(moments.auc[t])
        single[name] = _single(auc, c.cov, c.df, alpha)
        single_mle[name] = _single(auc, c.cov_biased, c.df_biased, alpha)
        notes += _variance_notes(f"treatment {name}", c.cov, c.cov_biased)
    differences: list[IMRMCDifference] = []
    differences_mle: list[IMRMCDifference] = []
    for t, u in combinations(range(n_t), 2):
        pair = f"{layout.treatments[t]} - {layout.treatments[u]}"
        estimate = float(moments.auc[t] - moments.auc[u])
        var, var_b, df, df_b = _difference(covs[t, t], covs[u, u], covs[t, u])
        differences.append(_difference_result(pair, estimate, var, df, alpha))
        differences_mle.append(_difference_result(pair, estimate, var_b, df_b, alpha))
        notes += _variance_notes(f"difference {pair}", var, var_b)
    reader_value = tuple(
        ReaderValue(treatment=name, reader=reader, value=float(moments.reader_auc[t, r]))
        for t, name in enumerate(layout.treatments)
        for r, reader in enumerate(layout.readers)
        if math.isfinite(moments.reader_auc[t, r])
    )
    truth_pos = layout.pos.shape[2]
    return IMRMCResult(
        alpha=alpha,
        n_readers=len(layout.readers),
        n_cases=layout.n_cases,
        n_positive=truth_pos,
        n_negative=layout.n_cases - truth_pos,
        treatment_value={n: float(moments.auc[t]) for t, n in enumerate(layout.treatments)},
        reader_value=reader_value,
        single_treatment=single,
        differences=tuple(differences),
        mle_single_treatment=single_mle,
        mle_differences=tuple(differences_mle),
        notes=tuple(notes),
    )


def _layout(frame: pd.DataFrame) -> tuple[_Layout, list[str]]:
    """Validate a reads frame and lay it out as arrays; notes on readers that add nothing."""
    import pandas as pd

    reads = mrmc_reads(frame)
    treatment = frame["treatment"]
    if isinstance(treatment.dtype, pd.CategoricalDtype):
        unused = [str(c) for c in treatment.cat.categories if not (treatment == c).any()]
        if unused:
            raise ValueError(f"treatment {unused[0]} has no reads")
    n_pos, n_neg = reads.n_positive, reads.n_negative
    if n_pos < 2 or n_neg < 2:
        raise ValueError(
            f"need at least 2 positive and 2 negative cases, got {n_pos} positive and "
            f"{n_neg} negative"
        )
    treatments, readers, truth = reads.treatments, reads.readers, reads.truth
    layout = _Layout(
        treatments=treatments,
        readers=readers,
        neg=np.ascontiguousarray(reads.ratings[:, :, ~truth]),
        pos=np.ascontiguousarray(reads.ratings[:, :, truth]),
        n_cases=len(reads.cases),
    )
    n0 = (~np.isnan(layout.neg)).sum(axis=2)
    n1 = (~np.isnan(layout.pos)).sum(axis=2)
    notes: list[str] = []
    for t, name in enumerate(treatments):
        if not ((n0[t] > 0) & (n1[t] > 0)).any():
            raise ValueError(
                f"treatment {name} has no reads of both a positive and a negative case"
            )
        for r, reader in enumerate(readers):
            if (n0[t, r] > 0) != (n1[t, r] > 0):
                lacking = "positive" if n1[t, r] == 0 else "negative"
                notes.append(
                    f"reader {reader} read no {lacking} case under treatment {name}: its reads "
                    "there add nothing to that treatment's AUC"
                )
    return layout, notes


def _cov(numer: FloatArray, denom: FloatArray) -> _Cov:
    """Variance (or covariance) of the reader-averaged AUC, as iMRMC ``doAUCmrmcCov``."""
    m_biased = np.where(denom != 0, numer / np.where(denom != 0, denom, 1.0), numer)
    numer_u, denom_u = _B @ numer, _B @ denom
    m = np.where(denom_u != 0, numer_u / np.where(denom_u != 0, denom_u, 1.0), numer_u)
    coeff = denom_u / denom[7]
    coeff[7] -= 1.0
    cov = float(coeff @ m)
    cov_biased = float(coeff @ m_biased)
    bck_biased = _B_ALPHA @ m_biased
    bck_coeff = _B_BDG2BCK @ coeff
    # Studies that pair no readers or cases across treatments: those components are 0.
    bck_biased[bck_coeff == 0] = 0.0
    with np.errstate(divide="ignore"):
        df_nd_r = tuple(float(np.round(1.0 / bck_coeff[k] - 1.0)) for k in (_N, _D, _R))
    sb = _sb(bck_biased[[_N, _D, _R]], df_nd_r)
    return _Cov(
        cov=cov,
        cov_biased=cov_biased,
        bck_biased=bck_biased,
        df_nd_r=(df_nd_r[0], df_nd_r[1], df_nd_r[2]),
        df=_df_bdg(cov, sb, min(df_nd_r)),
        df_biased=_df_bdg(cov_biased, sb, min(df_nd_r)),
    )


def _sb(components: FloatArray, dfs: tuple[float, ...]) -> float:
    """``sum B_x^2 / df_x^3`` over the negative-case, positive-case and reader components."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(components**2 / np.asarray(dfs) ** 3))


def _df_bdg(variance: float, sb: float, df_min: float) -> float:
    """iMRMC's dfBDG: ``var^2 / sb``, at least ``df_min``; NaN for a negative variance."""
    if not variance >= 0.0:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        df = float(np.float64(variance) ** 2 / np.float64(sb))
    return df_min if df < df_min else df


def _difference(a: _Cov, b: _Cov, ab: _Cov) -> tuple[float, float, float, float]:
    """Variance and df of a difference of two treatments, as iMRMC ``doDFdifference``."""
    var = a.cov + b.cov - 2.0 * ab.cov
    var_b = a.cov_biased + b.cov_biased - 2.0 * ab.cov_biased
    dfs = tuple(min(x, y) for x, y in zip(a.df_nd_r, b.df_nd_r, strict=True))
    parts = (a.bck_biased + b.bck_biased - 2.0 * ab.bck_biased)[[_N, _D, _R]]
    sb = _sb(parts, dfs)
    return var, var_b, _df_bdg(var, sb, min(dfs)), _df_bdg(var_b, sb, min(dfs))


def _interval(
    estimate: float, variance: float, df: float, alpha: float, null: float
) -> tuple[float | None, float | None, float | None, float | None, float | None]:
    """se, df, interval and p-value as iMRMC ``hypothesisTest_t`` (None where it gives NA)."""
    if not variance >= 0.0:  # negative or NaN
        return None, None, None, None, None
    se = math.sqrt(variance)
    if variance == 0.0 or math.isnan(df):
        return se, None, None, None, None
    dist_df = None if df > _NORMAL_ABOVE_DF else float(math.floor(df))
    half = t_quantile(1.0 - alpha / 2.0, dist_df) * se
    p = t_two_sided_p((estimate - null) / se, dist_df)
    return se, df, estimate - half, estimate + half, p


def _single(auc: float, variance: float, df: float, alpha: float) -> IMRMCSingle:
    se, df_out, lower, upper, _ = _interval(auc, variance, df, alpha, 0.5)
    return IMRMCSingle(auc, variance, se, df_out, lower, upper)


def _difference_result(
    pair: str, estimate: float, variance: float, df: float, alpha: float
) -> IMRMCDifference:
    se, df_out, lower, upper, p = _interval(estimate, variance, df, alpha, 0.0)
    return IMRMCDifference(estimate, variance, se, df_out, lower, upper, p, pair=pair)


def _variance_notes(what: str, variance: float, variance_mle: float) -> list[str]:
    """Notes on a variance without inference: negative (iMRMC gives NA) or zero."""
    tested = what.startswith("difference")  # only differences have a p-value
    missing = "df, interval and p-value" if tested else "df and interval"
    if variance < 0.0:
        return [
            f"the U-statistic variance of {what} is negative ({variance:.3g}): its SE, {missing} "
            f"are null, as in iMRMC; its MLE variance is {variance_mle:.3g}"
        ]
    if variance == 0.0:
        return [f"the variance of {what} is zero: its {missing} are undefined (null)"]
    return []
