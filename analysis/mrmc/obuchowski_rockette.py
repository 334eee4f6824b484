"""Obuchowski-Rockette (OR) analysis of MRMC reader studies with Hillis' degrees of freedom.

Model: ``theta_ij = mu + tau_i + R_j + (tau R)_ij + e_ij`` for the metric (AUC, sensitivity or
specificity) of reader ``j`` in treatment ``i``; the errors ``e`` (case sampling) have variance
``var_error`` and covariances ``cov1`` (same reader, different treatments), ``cov2`` (different
readers, same treatment), ``cov3`` (different readers and treatments), estimated from the cases
(:mod:`analysis.mrmc.covariance`).

Inference, with ``t`` treatments, ``r`` readers and ``MS_T``, ``MS_R``, ``MS_TR`` the ANOVA mean
squares of the ``theta_ij``:

RRRC (random readers and cases; Hillis 2007, 2008)
    ``F = MS_T / (MS_TR + r max(cov2 - cov3, 0))`` on ``t - 1`` and
    ``ddf = (MS_TR + r max(cov2 - cov3, 0))^2 / (MS_TR^2 / ((t - 1)(r - 1)))`` df; a difference
    has ``SE = sqrt(2 / r (MS_TR + r max(cov2 - cov3, 0)))`` and a t interval on ``ddf``.
FRRC (fixed readers, random cases)
    ``X2 = (t - 1) MS_T / (var_error - cov1 + (r - 1) max(cov2 - cov3, 0))``, chi-square on
    ``t - 1`` df; normal intervals.
RRFC (random readers, fixed cases)
    ``F = MS_T / MS_TR`` on ``t - 1`` and ``(t - 1)(r - 1)`` df.

Where ``cov2 < cov3`` this follows OR-DBM MRMC 2.5: ``max(cov2 - cov3, 0)`` is truncated in the
FRRC error term as well as in RRRC. MRMCaov 0.3.0 (``R/summary.R``) truncates only in RRRC, so on
such data its FRRC results differ: on ``tests/data/franken.csv`` its formula gives
X2 = 0.36396, p = 0.5463, where OR-DBM MRMC 2.51 and this module give X2 = 0.32101, p = 0.5710.
Pairwise differences use the pooled denominator of the global test, as both programs do; their
non-inferiority tests against a reference and Holm-adjusted p-values are in
:mod:`analysis.mrmc.noninferiority`.
The variance components are reported untruncated:
``var_TR = MS_TR - var_error + cov1 + cov2 - cov3`` and
``var_R = (MS_R - var_TR - var_error - (t - 1) cov1 + cov2 + (t - 1) cov3) / t``.

Designs (as MRMCaov 0.3.0, detected by :func:`analysis.io.detect_design`): factorial data,
fully or partially paired (``split-plot`` when reader groups read disjoint case blocks), cases
nested in readers and cases nested in treatments. Each metric value uses the cases its reader
read under its treatment, the covariances come from the jackknife, the unbiased estimator
(:mod:`analysis.mrmc.covariance`; DeLong needs fully paired data) or the case bootstrap
(:mod:`analysis.mrmc.bootstrap`) over the reads that exist,
and the covariances a design cannot have are set to zero before the formulas above and below:
``cov2 = cov3 = 0`` (and ``cov2_i = 0``) with cases nested in readers, ``cov1 = cov3 = 0`` with
cases nested in treatments (MRMCaov ``vcov_comps``). The FRRC truncation above applies to these
designs too, so FRRC differs from MRMCaov wherever ``cov2 < cov3`` (in the tests: Franken with
8% of its reads deleted). Readers nested in treatments (MRMCaov design 4) are not supported.
Results that carry no uncertainty (a zero standard error, an undefined test) and missing reads
in a factorial design are reported in :attr:`ORResult.notes`.

Single-treatment intervals (as MRMCaov 0.3.0), with ``MS_R(i)``, ``var_i`` and ``cov2_i`` from
treatment ``i`` alone: RRRC ``SE = sqrt(MS_R(i) / r + max(cov2_i, 0))`` with
``df = (MS_R(i) + r max(cov2_i, 0))^2 / (MS_R(i)^2 / (r - 1))``; FRRC
``SE = sqrt((var_i + (r - 1) max(cov2_i, 0)) / r)``, normal; RRFC ``SE = sqrt(MS_R(i) / r)``,
t on ``r - 1`` df. Intervals are clipped to [0, 1].

References
----------
Obuchowski NA, Rockette HE (1995). Hypothesis testing of diagnostic accuracy for multiple readers
and multiple tests: an ANOVA approach with dependent observations. Communications in Statistics -
Simulation and Computation 24(2):285-308. doi:10.1080/03610919508813243
Hillis SL (2007). A comparison of denominator degrees of freedom methods for multiple observer
ROC analysis. Statistics in Medicine 26(3):596-619. doi:10.1002/sim.2532
Hillis SL, Berbaum KS, Metz CE (2008). Recent developments in the Dorfman-Berbaum-Metz procedure
for multireader ROC study analysis. Academic Radiology 15(5):647-661.
doi:10.1016/j.acra.2007.12.015
Smith BJ, Hillis SL (2020). Multi-reader multi-case analysis of variance software for
diagnostic performance comparison of imaging modalities. Proc. SPIE 11316:113160K.
doi:10.1117/12.2549075
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from itertools import combinations
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from analysis.io import Design, MRMCDesign, mrmc_design
from analysis.mrmc.bootstrap import DEFAULT_N_BOOT, DEFAULT_SEED
from analysis.mrmc.covariance import COV_METHODS, CovMethod
from analysis.mrmc.distributions import (
    chi2_upper_p,
    f_upper_p,
    t_quantile,
    t_two_sided_p,
)
from analysis.mrmc.metrics import (
    FIGURES_OF_MERIT,
    FigureOfMerit,
    MetricSpec,
    spec_metric_and_covariance,
)
from analysis.mrmc.noninferiority import Adjust, with_inference_options
from analysis.mrmc.notes import degenerate_notes, design_notes
from analysis.mrmc.results import (
    Difference,
    GlobalTest,
    MeanSquares,
    ORResult,
    ReaderValue,
    SingleTreatment,
    VarComponents,
)

if TYPE_CHECKING:
    import pandas as pd

    from analysis.partial import PartialArea

FloatArray = NDArray[np.float64]
Factors = Literal["RRRC", "FRRC", "RRFC"]
FACTORS: tuple[Factors, ...] = ("RRRC", "FRRC", "RRFC")
ORCovMethod = Literal[CovMethod, "bootstrap"]
OR_COV_METHODS: tuple[ORCovMethod, ...] = (*COV_METHODS, "bootstrap")


def mean_squares(values: FloatArray) -> MeanSquares:
    """ANOVA mean squares of a ``t x r`` table (treatments x readers), one value per cell."""
    t, r = values.shape
    grand = values.mean()
    by_treatment = values.mean(axis=1)
    by_reader = values.mean(axis=0)
    ms_t = r * float(np.sum((by_treatment - grand) ** 2)) / (t - 1) if t > 1 else math.nan
    ms_r = t * float(np.sum((by_reader - grand) ** 2)) / (r - 1)
    interaction = values - by_treatment[:, None] - by_reader[None, :] + grand
    ms_tr = float(np.sum(interaction**2)) / ((t - 1) * (r - 1)) if t > 1 else math.nan
    return MeanSquares(T=ms_t, R=ms_r, TR=ms_tr)


def _covariance_means(
    covariance: FloatArray, t: int, r: int, design: Design = "factorial"
) -> tuple[float, float, float, float]:
    """(var_error, cov1, cov2, cov3): averages of the covariance matrix over its blocks.

    As MRMCaov's ``vcov_comps.mrmc``, covariances the design cannot have are zero: ``cov2`` and
    ``cov3`` with cases nested in readers, ``cov1`` and ``cov3`` with cases nested in treatments.
    """
    c = covariance.reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]

    def mean_where(mask: NDArray[np.bool_]) -> float:
        full = np.broadcast_to(mask, c.shape)
        return float(c[full].mean()) if full.any() else math.nan

    var_error = mean_where(same_t & same_r)
    cov1 = mean_where(~same_t & same_r)
    cov2 = mean_where(same_t & ~same_r)
    cov3 = mean_where(~same_t & ~same_r)
    if design == "cases-nested-in-readers":
        cov2 = cov3 = 0.0
    elif design == "cases-nested-in-treatments":
        cov1 = cov3 = 0.0
    return var_error, cov1, cov2, cov3


def variance_components(
    ms: MeanSquares, var_error: float, cov1: float, cov2: float, cov3: float, t: int
) -> VarComponents:
    """Method-of-moments OR variance components, untruncated.

    From ``E(MS_TR) = var_TR + var_error - cov1 - cov2 + cov3`` and
    ``E(MS_R) = t var_R + var_TR + var_error + (t - 1) cov1 - cov2 - (t - 1) cov3``.
    """
    var_tr = ms.TR - var_error + cov1 + cov2 - cov3
    var_r = (ms.R - var_error - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
    return VarComponents(
        var_R=var_r, var_TR=var_tr, cov1=cov1, cov2=cov2, cov3=cov3, var_error=var_error
    )


def rrrc_denominator(
    ms: MeanSquares, cov2: float, cov3: float, t: int, r: int
) -> tuple[float, float]:
    """RRRC error term ``MS_TR + r max(cov2 - cov3, 0)`` and its Hillis df (module docstring).

    The variance of a difference of two treatment means is ``2 / r`` times the error term.
    """
    denominator = ms.TR + r * max(cov2 - cov3, 0.0)
    df2 = denominator**2 / (ms.TR**2 / ((t - 1) * (r - 1))) if ms.TR > 0 else math.inf
    return denominator, df2


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, inf or NaN (not an exception) for a zero denominator.

    Degenerate data (every reader perfect, identical treatments) give zero mean squares; the
    result then carries inf/NaN, which :meth:`ORResult.to_dict` writes as null.
    """
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def interval(
    estimate: float, se: float, df: float | None, alpha: float, clip: bool
) -> tuple[float, float]:
    half = t_quantile(1.0 - alpha / 2.0, df) * se
    lower, upper = estimate - half, estimate + half
    if clip:
        lower, upper = max(lower, 0.0), min(upper, 1.0)
    return lower, upper


def or_analysis(
    frame: pd.DataFrame,
    *,
    metric: FigureOfMerit = "empirical_auc",
    partial: PartialArea | None = None,
    cov: ORCovMethod = "jackknife",
    factors: Factors = "RRRC",
    alpha: float = 0.05,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    margin: float | None = None,
    reference: str | None = None,
    adjust: Adjust = "none",
) -> ORResult:
    """Obuchowski-Rockette MRMC analysis with Hillis' degrees of freedom.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, columns ``reader, treatment, case, truth, rating`` (``truth`` 0/1; higher
        ratings mean "more likely positive"), one row per read. Reads may be missing: the design
        (factorial, split-plot, cases nested in readers or in treatments) is detected from the
        data; every reader must read under every treatment.
    metric : {"empirical_auc", "binormal_auc", "binormalLR_auc", "sensitivity", "specificity"}
        The reader performance metric (:mod:`analysis.mrmc.metrics`): the empirical AUC, the
        AUC of the maximum-likelihood binormal curve (:mod:`analysis.binormal`) or binormal
        likelihood-ratio (PROPROC) curve (:mod:`analysis.proproc`), sensitivity or specificity
        (binary, 0/1, ratings).
    partial : PartialArea, optional
        For an AUC metric, the part of the curve (:class:`analysis.partial.PartialArea`);
        jackknife or bootstrap covariance only, as MRMCaov.
    cov : {"jackknife", "delong", "unbiased", "bootstrap"}
        Estimator of the error covariances (see :mod:`analysis.mrmc.covariance` and, for the
        bootstrap, :mod:`analysis.mrmc.bootstrap`).
    factors : {"RRRC", "FRRC", "RRFC"}
        Which factors are random: readers and cases, cases only, or readers only.
    alpha : float
        ``1 - alpha`` is the confidence level of the intervals.
    n_boot, seed : int
        Bootstrap replicates and the seed that draws them (``cov="bootstrap"`` only).
    margin : float, optional
        Non-inferiority margin: adds the one-sided test of every treatment against
        ``reference`` (the first treatment by default); see
        :mod:`analysis.mrmc.noninferiority`.
    reference : str, optional
        The reference treatment of the non-inferiority tests.
    adjust : {"none", "holm"}
        Adds Holm-adjusted p-values of the pairwise differences.

    Returns
    -------
    ORResult
        Treatment and reader metric values, variance components, the global test of equal
        treatments, every pairwise difference and each treatment's interval. The formulas, the
        truncation convention where ``cov2 < cov3`` and the references are in the module
        docstring of :mod:`analysis.mrmc.obuchowski_rockette`.

    Raises
    ------
    ValueError
        On invalid input (see :func:`analysis.io.mrmc_design`) or options, fewer than two
        treatments or readers, a reader x treatment with fewer than 2 cases of a truth class the
        metric uses, or DeLong covariance on data that are not fully paired.
    """
    return or_analysis_design(
        mrmc_design(frame),
        metric=metric,
        partial=partial,
        cov=cov,
        factors=factors,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        margin=margin,
        reference=reference,
        adjust=adjust,
    )


def check_options(metric: str, cov: str, factors: str, alpha: float) -> None:
    """Raise ValueError naming an unknown option or an alpha outside (0, 1)."""
    if metric not in FIGURES_OF_MERIT:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(FIGURES_OF_MERIT)}")
    if cov not in OR_COV_METHODS:
        raise ValueError(
            f"unknown covariance method {cov!r}: choose one of {', '.join(OR_COV_METHODS)}"
        )
    if factors not in FACTORS:
        raise ValueError(f"unknown factors {factors!r}: choose one of {', '.join(FACTORS)}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")


def or_analysis_design(
    design: MRMCDesign,
    *,
    metric: FigureOfMerit = "empirical_auc",
    partial: PartialArea | None = None,
    cov: ORCovMethod = "jackknife",
    factors: Factors = "RRRC",
    alpha: float = 0.05,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    margin: float | None = None,
    reference: str | None = None,
    adjust: Adjust = "none",
) -> ORResult:
    """:func:`or_analysis` on an already validated :class:`analysis.io.MRMCDesign`."""
    check_options(metric, cov, factors, alpha)
    t, r, K = design.ratings.shape
    if t < 2:
        raise ValueError(f"need at least 2 treatments, got {t}")
    if r < 2:
        raise ValueError(f"need at least 2 readers, got {r}")
    spec = MetricSpec(metric, partial)
    values, covariance, metric_notes = spec_metric_and_covariance(
        design, spec, cov, n_boot=n_boot, seed=seed
    )
    result = or_inference(
        values,
        covariance,
        treatments=design.treatments,
        readers=design.readers,
        design=design.design,
        n_cases=K,
        n_positive=design.n_positive,
        n_negative=design.n_negative,
        metric=metric,
        cov=cov,
        factors=factors,
        alpha=alpha,
        notes=design_notes(design) + metric_notes,
    )
    if partial is not None:
        result = replace(result, partial=partial)
    if cov == "bootstrap":
        result = replace(result, bootstrap={"n_boot": n_boot, "seed": seed})
    return with_inference_options(result, margin=margin, reference=reference, adjust=adjust)


def or_inference(
    values: FloatArray,
    covariance: FloatArray,
    *,
    treatments: Sequence[str],
    readers: Sequence[str],
    design: Design = "factorial",
    n_cases: int,
    n_positive: int,
    n_negative: int,
    metric: str,
    cov: str,
    factors: Factors = "RRRC",
    alpha: float = 0.05,
    notes: tuple[str, ...] = (),
) -> ORResult:
    """The OR analysis of any figure of merit from its values and their covariance over cases.

    ``values`` is the ``t x r`` table of a figure of merit (treatments x readers), ``covariance``
    its ``(t r) x (t r)`` covariance matrix over the population of cases (index ``i r + j``), as
    :func:`analysis.mrmc.covariance.metric_and_covariance` returns them; any metric (ROC, FROC)
    with a jackknife, bootstrap or analytic covariance enters the same inference. ``design``
    zeroes the covariances the design cannot have; ``notes`` are carried into the result.
    Formulas in the module docstring.
    """
    t, r = values.shape
    ms = mean_squares(values)
    var_error, cov1, cov2, cov3 = _covariance_means(covariance, t, r, design)
    components = variance_components(ms, var_error, cov1, cov2, cov3, t)
    excess = max(cov2 - cov3, 0.0)

    # Denominator of the test and variance of a difference of two treatment means.
    df2: float | None
    if factors == "RRRC":
        denominator, df2 = rrrc_denominator(ms, cov2, cov3, t, r)
        statistic = ratio(ms.T, denominator)
        global_test = GlobalTest("F", statistic, t - 1, df2, f_upper_p(statistic, t - 1, df2))
        var_difference = 2.0 / r * denominator
    elif factors == "FRRC":
        denominator = var_error - cov1 + (r - 1) * excess
        df2 = None
        statistic = ratio((t - 1) * ms.T, denominator)
        global_test = GlobalTest("X2", statistic, t - 1, None, chi2_upper_p(statistic, t - 1))
        var_difference = 2.0 / r * denominator
    else:
        df2 = float((t - 1) * (r - 1))
        statistic = ratio(ms.T, ms.TR)
        global_test = GlobalTest("F", statistic, t - 1, df2, f_upper_p(statistic, t - 1, df2))
        var_difference = 2.0 / r * ms.TR

    means = values.mean(axis=1)
    se_difference = math.sqrt(var_difference)
    differences = []
    for a, b in combinations(range(t), 2):
        estimate = float(means[a] - means[b])
        lower, upper = interval(estimate, se_difference, df2, alpha, clip=False)
        differences.append(
            Difference(
                pair=f"{treatments[a]} - {treatments[b]}",
                estimate=estimate,
                se=se_difference,
                df=df2,
                ci_lower=lower,
                ci_upper=upper,
                p_value=t_two_sided_p(ratio(estimate, se_difference), df2),
            )
        )

    single: dict[str, SingleTreatment] = {
        treatments[i]: _single_treatment(
            values[i],
            covariance.reshape(t, r, t, r)[i, :, i, :],
            factors,
            alpha,
            nested_in_readers=design == "cases-nested-in-readers",
        )
        for i in range(t)
    }
    return ORResult(
        metric=metric,
        cov=cov,
        factors=factors,
        alpha=alpha,
        n_readers=r,
        n_cases=n_cases,
        n_positive=n_positive,
        n_negative=n_negative,
        treatment_value={treatments[i]: float(means[i]) for i in range(t)},
        reader_value=tuple(
            ReaderValue(treatments[i], readers[j], float(values[i, j]))
            for i in range(t)
            for j in range(r)
        ),
        var_components=None if factors == "RRFC" else components,
        global_test=global_test,
        differences=tuple(differences),
        single_treatment=single,
        mean_squares=ms,
        design=design,
        notes=notes + degenerate_notes(global_test, differences, single),
    )


def _single_treatment(
    values: FloatArray,
    covariance: FloatArray,
    factors: Factors,
    alpha: float,
    *,
    nested_in_readers: bool = False,
) -> SingleTreatment:
    """Interval for one treatment's reader-averaged metric (formulas in the module docstring).

    With cases nested in readers ``cov2_i`` is zero, as MRMCaov's ``vcov_comps.mrmc_tests``.
    """
    r = values.size
    var_i = float(np.diag(covariance).mean())
    off_diagonal = ~np.eye(r, dtype=bool)
    cov2_i = 0.0 if nested_in_readers else float(covariance[off_diagonal].mean())
    return single_treatment_interval(values, var_i, cov2_i, factors, alpha)


def single_treatment_interval(
    values: FloatArray, var_i: float, cov2_i: float, factors: Factors, alpha: float
) -> SingleTreatment:
    """One treatment's reader-averaged metric and its interval from its error (co)variances.

    ``values`` are the treatment's per-reader metrics, ``var_i`` its mean error variance and
    ``cov2_i`` its mean covariance between readers (truncated at 0 here); formulas in the module
    docstring. The interval is clipped to [0, 1].
    """
    r = values.size
    estimate = float(values.mean())
    ms_r = float(np.sum((values - estimate) ** 2)) / (r - 1)
    cov2_i = max(cov2_i, 0.0)
    df: float | None
    if factors == "RRRC":
        se = math.sqrt(ms_r / r + cov2_i)
        df = (ms_r + r * cov2_i) ** 2 / (ms_r**2 / (r - 1)) if ms_r > 0 else math.inf
    elif factors == "FRRC":
        se = math.sqrt((var_i + (r - 1) * cov2_i) / r)
        df = None
    else:
        se = math.sqrt(ms_r / r)
        df = float(r - 1)
    lower, upper = interval(estimate, se, df, alpha, clip=True)
    return SingleTreatment(estimate=estimate, se=se, df=df, ci_lower=lower, ci_upper=upper)
