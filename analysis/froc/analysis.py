"""OR and DBM analysis of a FROC figure of merit, as RJafroc 2.1.3 ``St()``.

The figure of merit ``theta_ij`` of every treatment and reader (:mod:`analysis.froc.fom`) and its
values with one case deleted, ``theta_ij(-k)``, over the cases RJafroc deletes for that figure of
merit (every case; only the normal ones for HrSp and MaxNLF; only the abnormal ones for HrSe and
MaxLLF; ``n`` of them), enter the project's engines:

OR (``method="OR"``)
    :func:`analysis.mrmc.or_inference` with the jackknife covariance
    ``(n - 1)/n sum_k (theta_ij(-k) - mean)(theta_i'j'(-k) - mean)`` (RJafroc
    ``FOMijk2ORVarComp``: R's ``cov()`` times ``(n - 1)^2 / n``).
DBM (``method="DBM"``)
    :func:`analysis.dbm.dbm_inference` on the pseudovalues ``n theta_ij - (n - 1) theta_ij(-k)``,
    each treatment x reader's shifted so that their mean is ``theta_ij`` (RJafroc
    ``UtilPseudoValues``), with ``K = n`` in the formulas (RJafroc ``StDBMAnalysis``).

Equal to RJafroc 2.1.3 to 1e-6 relative (``tests/analysis/test_froc_analysis.py``, golden values
from ``tests/data/rjafroc_froc.R`` on its datasets 01, 04, 05, 06 and a simulated study): every
figure of merit, the OR covariances and mean squares, the DBM mean squares and variance
components, F or chi-square, df, p, the differences (estimate, SE, CI, p) and the
single-treatment estimates, SEs and df, for RRRC, FRRC and RRFC. The remaining differences
follow the project's OR/DBM conventions, as its ROC analysis does:

- ``var_TR`` is reported untruncated, ``MS_TR - var_error + cov1 + cov2 - cov3``; RJafroc's
  ``UtilORVarComp`` truncates ``max(cov2 - cov3, 0)`` in it (and so in ``var_R``). They differ
  only where ``cov2 < cov3``: on ``dataset06``, MaxNLF, OR, RJafroc's ``VarTR`` is 0.00134660
  and ours 0.00131051 (cov2 0.00343703 < cov3 0.00347311). F, df, p and every interval are
  equal, as both truncate in the test's denominator.
- Single-treatment intervals are clipped to the range of the figure of merit ([0, 1], and
  [0, inf) for MaxNLF, the mean number of NL marks per normal case); RJafroc does not clip. On
  the simulated study, HrSe, OR RRRC, treatment 2, RJafroc's upper limit is 1.005687 and ours 1;
  on ``dataset06``, MaxNLF, treatment 2, RJafroc's lower limit is -0.052511 and ours 0. The
  tests compare the clipped RJafroc bounds.
- FRRC single-treatment intervals and differences in OR are normal-based with ``df`` null;
  RJafroc uses the same normal quantile but prints ``DF = K - 1`` beside them.

RJafroc 2.1.3 bugs met on the way (none changes a number above): ``St(...,
analysisOption = "ALL")`` stops with "must be `RRRC`, `FRRC`, `RRFC` or `ALL`" (its check admits
only the three); ``covEstMethod = "DeLong"`` (and ``"bootstrap"``) stops for every figure of
merit ("code needs fixing: SmpldFom2ORCov DeLong"); ``DfSaveDataFile(format = "JAFROC")`` is
commented out (``DfWriteExcelDataFile`` writes the workbook, rounding ratings to 6 significant
digits); its default workbook reader drops reader IDs that are not integers
(``as.integer()``) and its newer reader (``newExcelFileFormat = TRUE``) rejects sheets named
NL and LL (it sorts the sheet names and expects FP first).

References
----------
Chakraborty DP (2017). Observer Performance Methods for Diagnostic Imaging. CRC Press.
doi:10.1201/9781351228190
Hillis SL (2007). A comparison of denominator degrees of freedom methods for multiple observer
ROC analysis. Statistics in Medicine 26(3):596-619. doi:10.1002/sim.2532
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

from analysis.dbm import DBMResult, dbm_inference
from analysis.froc.data import FrocData
from analysis.froc.fom import (
    FloatArray,
    Fom,
    check_fom,
    jackknife_cases,
    jackknife_covariance,
    jackknife_values,
    pseudovalues,
)
from analysis.mrmc import ORResult, ReaderValue, SingleTreatment, or_inference
from analysis.mrmc.distributions import t_quantile
from analysis.mrmc.obuchowski_rockette import FACTORS, Factors

Method = Literal["OR", "DBM"]
METHODS: tuple[Method, ...] = ("OR", "DBM")


def _check_options(method: str, factors: str, alpha: float) -> tuple[Method, Factors]:
    m = next((x for x in METHODS if x == method), None)
    if m is None:
        raise ValueError(f"unknown method {method!r}: use OR or DBM")
    f = next((x for x in FACTORS if x == factors), None)
    if f is None:
        raise ValueError(f"unknown factors {factors!r}: use RRRC, FRRC or RRFC")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return m, f


def _bounds(fom: Fom) -> tuple[float, float]:
    return (0.0, math.inf) if fom == "MaxNLF" else (0.0, 1.0)


def _clipped(single: SingleTreatment, fom: Fom, alpha: float) -> SingleTreatment:
    """The interval recomputed and clipped to the figure of merit's range, not to [0, 1]."""
    if single.df is None:
        quantile = t_quantile(1.0 - alpha / 2.0, math.inf)
    else:
        quantile = t_quantile(1.0 - alpha / 2.0, single.df)
    low, high = _bounds(fom)
    half = quantile * single.se
    return replace(
        single,
        ci_lower=min(max(single.estimate - half, low), high),
        ci_upper=max(min(single.estimate + half, high), low),
    )


def froc_analysis(
    data: FrocData,
    *,
    fom: str = "wAFROC",
    method: str = "OR",
    factors: str = "RRRC",
    alpha: float = 0.05,
) -> ORResult | DBMResult:
    """OR or DBM analysis of a FROC figure of merit, as RJafroc 2.1.3 ``St()``.

    Parameters
    ----------
    data
        The marks (:func:`analysis.froc.read_workbook` or :func:`analysis.froc.froc_data`).
    fom
        wAFROC, AFROC, HrAuc, wAFROC1, AFROC1, HrSe, HrSp, MaxLLF or MaxNLF.
    method
        ``"OR"`` (Obuchowski-Rockette, jackknife covariance) or ``"DBM"`` (pseudovalues).
    factors
        ``"RRRC"``, ``"FRRC"`` or ``"RRFC"``.
    alpha
        Significance level of the tests and intervals.

    Returns
    -------
    ORResult or DBMResult
        ``reader_value`` holds the figure of merit, ``metric`` its name, ``n_positive`` and
        ``n_negative`` the numbers of abnormal and normal cases; ``n_cases`` all cases.

    Raises
    ------
    ValueError
        For an unknown figure of merit, method or factors, fewer than 2 treatments or readers,
        or data without the cases the figure of merit needs.
    """
    name = check_fom(fom)
    m, f = _check_options(method, factors, alpha)
    n_t, n_r = len(data.treatments), len(data.readers)
    if n_t < 2 or n_r < 2:
        raise ValueError(
            f"the {m} analysis needs at least 2 treatments and 2 readers, found {n_t} and {n_r}"
        )
    values, jk = jackknife_values(data, name)
    readers = reader_values(values, data)
    result: ORResult | DBMResult
    if m == "OR":
        result = or_inference(
            values,
            jackknife_covariance(jk),
            treatments=data.treatments,
            readers=data.readers,
            n_cases=len(data.cases),
            n_positive=data.n_abnormal,
            n_negative=data.n_normal,
            metric=name,
            cov="jackknife",
            factors=f,
            alpha=alpha,
            notes=_notes(data, name),
        )
    else:
        result = replace(
            dbm_inference(
                pseudovalues(values, jk),
                treatments=data.treatments,
                n_positive=data.n_abnormal,
                n_negative=data.n_normal,
                metric=name,
                factors=f,
                alpha=alpha,
            ),
            n_cases=len(data.cases),
            reader_value=readers,
        )
    single = {key: _clipped(s, name, alpha) for key, s in result.single_treatment.items()}
    return replace(result, single_treatment=single)


def _notes(data: FrocData, fom: Fom) -> tuple[str, ...]:
    cases = jackknife_cases(fom)
    if cases == "all":
        return ()
    n = data.n_normal if cases == "normal" else data.n_abnormal
    return (f"{fom} depends on the {cases} cases only: the jackknife runs over those {n} cases",)


def reader_values(values: FloatArray, data: FrocData) -> tuple[ReaderValue, ...]:
    """The ``(I, J)`` figure of merit as :class:`ReaderValue` records, treatment by treatment."""
    return tuple(
        ReaderValue(t, r, float(values[i, j]))
        for i, t in enumerate(data.treatments)
        for j, r in enumerate(data.readers)
    )
