"""Missed findings and false positives per arm, with case-clustered inference.

Estimands (per finding type, and pooled over a chosen set of clinically significant types):

* **missed-finding rate** of an arm: the proportion of a reader's reads of truth-present findings
  that called the finding absent, ``1 - sensitivity``; the difference ``assisted - unassisted``;
* **false-positive rate**: the proportion of a reader's reads of truth-absent findings called
  present, ``1 - specificity``, and its difference likewise.

In the pooled entry a reader's rate is the pooled proportion over all of that reader's reads of
the pooled finding types (a case with two present findings contributes two reads).

Primary analysis (fully crossed designs): the Obuchowski-Rockette MRMC analysis (random readers
and cases, Hillis df) of the reader x arm rates, with the jackknife over **cases** for the error
covariance (:func:`analysis.case_clustered.or_pooled_proportion`). Leaving a case out removes
all of its findings, so the pooled analysis clusters on the case as the per-type one does; with
one finding type it is MRMCaov's ``binary_sens`` / ``binary_spec`` analysis (``missed = 1 -
sensitivity``: same SE, df and p-value). Each arm shows the **reader-averaged** rate with its
OR single-treatment interval (clipped to [0, 1]).

When the design is not fully crossed (a reader part-way, a missing arm, duplicate reads) the OR
analysis is skipped and its reason kept in ``or_error``; each arm then shows the **pooled** rate
``events / n`` over all reads with a Wilson interval on the case-clustered effective sample size
(Korn & Graubard 1998, :func:`analysis.case_clustered.clustered_proportion`). A rate is never
shown with an interval computed for another estimand: :class:`ArmRate` names both.

Secondary analysis: a GEE logistic model (Liang & Zeger 1986) ``logit P(event) = b0 + b1
assisted`` on the reads of the truth class, **clusters = cases** (all reads of a case, every
reader, arm and finding), exchangeable working correlation, robust (sandwich) covariance, fitted
on per-case counts (:func:`analysis.case_clustered.gee_logit_exchangeable`, the estimator of
statsmodels' GEE). It reports the odds ratio ``exp(b1)`` with its Wald CI and p-value, and the
rate difference ``expit(b0 + b1) - expit(b0)`` with a delta-method CI. Reader variability is not
modelled by the GEE, so its test is anti-conservative when readers differ in their benefit from
the AI (type I error measured in ``benchmarks/validate_missed_kappa.md``), which is why it is
secondary.

Split of misses: each missed finding is "AI flagged, reader dismissed" when the AI's probability
was at or above the model's operating threshold, "AI missed too" otherwise (or "AI unavailable").

References
----------
Obuchowski NA, Rockette HE (1995). Hypothesis testing of diagnostic accuracy for multiple readers
and multiple tests. Commun Stat Simul Comput 24(2):285-308. doi:10.1080/03610919508813243
Hillis SL (2007). Stat Med 26(3):596-619. doi:10.1002/sim.2532
Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
Biometrika 73(1):13-22. doi:10.1093/biomet/73.1.13
Korn EL, Graubard BI (1998). Confidence intervals for proportions with small expected number of
positive counts estimated from survey data. Survey Methodology 24(2):193-201.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special

from analysis._common import jsonable_float as _num
from analysis.case_clustered import (
    clustered_proportion,
    compact_codes,
    gee_logit_exchangeable,
    or_pooled_proportion,
)
from analysis.mrmc.results import SingleTreatment

ARMS: tuple[str, str] = ("unassisted", "assisted")
Kind = Literal["missed", "false_positive"]
Estimand = Literal["reader-averaged", "pooled"]
IntArray = NDArray[np.int64]
_NEEDED = ("reader", "case", "arm", "finding", "truth", "call", "ai_probability")
OR_METHOD = "OR single-treatment interval (RRRC, case jackknife)"
POOLED_METHOD = "Wilson interval on the case-clustered effective sample size (Korn-Graubard)"


@dataclass(frozen=True)
class ArmRate:
    """A rate in one arm, the estimand it is and the interval computed for that estimand.

    ``estimand`` is ``"reader-averaged"`` (mean of the readers' rates, OR interval) or
    ``"pooled"`` (``events / n`` over all reads, case-clustered interval); ``method`` names the
    interval. ``n`` and ``events`` are the pooled counts in either case.
    """

    arm: str
    n: int
    events: int
    estimand: Estimand
    rate: float
    ci_lower: float
    ci_upper: float
    method: str

    @property
    def ci_method(self) -> str:
        """The interval's method (the name the figures use)."""
        return self.method

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "n": self.n,
            "events": self.events,
            "estimand": self.estimand,
            "rate": _num(self.rate),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "method": self.method,
            "ci_method": self.method,
        }


@dataclass(frozen=True)
class Comparison:
    """``assisted - unassisted`` difference of a rate."""

    estimate: float
    se: float
    df: float | None
    ci_lower: float
    ci_upper: float
    p_value: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "estimate": _num(self.estimate),
            "se": _num(self.se),
            "df": _num(self.df),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "p_value": _num(self.p_value),
        }


@dataclass(frozen=True)
class GeeComparison:
    """GEE logistic model (clusters = cases, exchangeable): odds ratio and rate difference."""

    odds_ratio: float
    or_ci_lower: float
    or_ci_upper: float
    p_value: float
    difference: Comparison
    working_correlation: float
    n_clusters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "odds_ratio": _num(self.odds_ratio),
            "or_ci_lower": _num(self.or_ci_lower),
            "or_ci_upper": _num(self.or_ci_upper),
            "p_value": _num(self.p_value),
            "difference": self.difference.to_dict(),
            "working_correlation": _num(self.working_correlation),
            "clusters": "case",
            "n_clusters": self.n_clusters,
            "cov_struct": "exchangeable",
        }


@dataclass(frozen=True)
class RateAnalysis:
    """Missed-finding or false-positive rate of one finding type (or the pooled set)."""

    kind: str
    arms: tuple[ArmRate, ...]
    or_difference: Comparison | None
    or_error: str | None
    gee: GeeComparison | None
    gee_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arms": [a.to_dict() for a in self.arms],
            "or_difference": None if self.or_difference is None else self.or_difference.to_dict(),
            "or_error": self.or_error,
            "gee": None if self.gee is None else self.gee.to_dict(),
            "gee_error": self.gee_error,
        }


@dataclass(frozen=True)
class MissSplit:
    """Misses of one arm split by the AI's call on the same finding."""

    arm: str
    missed: int
    ai_flagged: int
    ai_missed: int
    ai_unavailable: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "missed": self.missed,
            "ai_flagged_reader_dismissed": self.ai_flagged,
            "ai_missed_too": self.ai_missed,
            "ai_unavailable": self.ai_unavailable,
        }


@dataclass(frozen=True)
class FindingMisses:
    """Everything :func:`missed_findings` reports for one finding type (or ``pooled``)."""

    finding: str
    findings_pooled: tuple[str, ...]
    missed: RateAnalysis
    false_positive: RateAnalysis
    split: tuple[MissSplit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "findings_pooled": list(self.findings_pooled),
            "missed": self.missed.to_dict(),
            "false_positive": self.false_positive.to_dict(),
            "split": [s.to_dict() for s in self.split],
        }


@dataclass(frozen=True)
class MissedFindingsResult:
    """Per finding type and pooled results of :func:`missed_findings`."""

    findings: tuple[FindingMisses, ...]
    ai_threshold: dict[str, float]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "ai_threshold": dict(self.ai_threshold),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class _Reads:
    """The reads of the two arms as integer codes (names kept aside), for vectorised counting."""

    reader: IntArray
    case: IntArray
    finding: IntArray
    assisted: NDArray[np.bool_]
    truth: IntArray
    call: IntArray
    ai_probability: NDArray[np.float64]
    readers: tuple[str, ...]
    findings: tuple[str, ...]

    def take(self, mask: NDArray[np.bool_]) -> _Reads:
        return _Reads(
            self.reader[mask],
            self.case[mask],
            self.finding[mask],
            self.assisted[mask],
            self.truth[mask],
            self.call[mask],
            self.ai_probability[mask],
            self.readers,
            self.findings,
        )


def _codes(values: pd.Series) -> tuple[IntArray, tuple[str, ...]]:
    """Integer codes in order of first appearance, of the values as strings."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    names = np.asarray([str(u) for u in uniques], dtype=object)
    # values that differ but print alike (1 and "1") are one ID
    merged, labels = pd.factorize(names)
    return merged[codes].astype(np.int64), tuple(str(x) for x in labels)


def _check(long: pd.DataFrame) -> _Reads:
    missing = [c for c in _NEEDED if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    arm_code, arm_names = _codes(long["arm"])
    if not set(ARMS) <= set(arm_names):
        raise ValueError(f"need both arms {ARMS[0]!r} and {ARMS[1]!r}, got {sorted(arm_names)}")
    binary = {}
    for col in ("truth", "call"):
        values = pd.to_numeric(long[col], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"{col} must be 0 or 1 in every row")
        binary[col] = values.astype(np.int64)
    assisted_code = arm_names.index(ARMS[1])
    keep = np.isin(arm_code, [arm_names.index(a) for a in ARMS])
    reader, readers = _codes(long["reader"])
    case, _ = _codes(long["case"])
    finding, findings = _codes(long["finding"])
    ai = pd.to_numeric(long["ai_probability"], errors="coerce").to_numpy(dtype=np.float64)
    return _Reads(
        reader, case, finding, arm_code == assisted_code, binary["truth"], binary["call"], ai,
        readers, findings,
    ).take(keep)  # fmt: skip


def _crossing_error(reads: _Reads) -> str | None:
    """Why the OR analysis cannot run on these reads (None when fully crossed)."""
    unit, n_units = compact_codes(reads.case * len(reads.findings) + reads.finding)
    reader, r = compact_codes(reads.reader)
    readers = [reads.readers[code] for code in np.unique(reads.reader)]
    cell = (reads.assisted.astype(np.int64) * r + reader) * n_units + unit
    counts = np.bincount(cell, minlength=2 * r * n_units).reshape(2, r, n_units)
    if np.any(counts > 1):
        i, j, _ = np.argwhere(counts > 1)[0]
        return f"reader {readers[j]!r} read a finding of a case more than once in arm {ARMS[i]!r}"
    short = counts.sum(axis=2) < n_units
    if np.any(short):
        i, j = np.argwhere(short)[0]
        return (
            f"not fully crossed: reader {readers[j]!r} read {int(counts[i, j].sum())} of "
            f"{n_units} case findings in arm {ARMS[i]!r}; the OR analysis needs every reader to "
            "read every case in both arms"
        )
    positives = np.bincount(unit, weights=reads.truth.astype(np.float64), minlength=n_units)
    reads_per_unit = np.bincount(unit, minlength=n_units)
    if np.any((positives > 0) & (positives < reads_per_unit)):
        return "truth differs between reads of the same case and finding"
    return None


def _arm_rate(
    arm: str, event: NDArray[np.bool_], case: IntArray, or_arm: SingleTreatment | None, alpha: float
) -> ArmRate:
    n, events = int(event.size), int(event.sum())
    if or_arm is not None:
        return ArmRate(arm, n, events, "reader-averaged", or_arm.estimate, or_arm.ci_lower,
                       or_arm.ci_upper, OR_METHOD)  # fmt: skip
    rate, lower, upper = clustered_proportion(case, event, alpha)
    return ArmRate(arm, n, events, "pooled", rate, lower, upper, POOLED_METHOD)


def _gee_part(sub: _Reads, event: NDArray[np.bool_], alpha: float) -> GeeComparison:
    """GEE logistic on per-case counts (module docstring); raises ValueError if not estimable."""
    fit = gee_logit_exchangeable(sub.case, sub.assisted, event)
    b0, b1 = fit.params
    cov = fit.cov
    z = -float(special.ndtri(alpha / 2))
    se1 = math.sqrt(max(float(cov[1, 1]), 0.0))
    p = 2.0 * float(special.ndtr(-(abs(b1) / se1))) if se1 > 0 else math.nan
    p_u, p_a = float(special.expit(b0)), float(special.expit(b0 + b1))
    # delta method for p_a - p_u: gradient w.r.t. (b0, b1)
    grad = np.array([p_a * (1 - p_a) - p_u * (1 - p_u), p_a * (1 - p_a)])
    se_d = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    diff = p_a - p_u
    p_d = 2.0 * float(special.ndtr(-(abs(diff) / se_d))) if se_d > 0 else math.nan
    comp = Comparison(diff, se_d, None, diff - z * se_d, diff + z * se_d, p_d)
    return GeeComparison(math.exp(b1), math.exp(b1 - z * se1), math.exp(b1 + z * se1), p, comp,
                         fit.rho, fit.n_clusters)  # fmt: skip


def _rate_analysis(reads: _Reads, kind: Kind, crossing: str | None, alpha: float) -> RateAnalysis:
    truth_value = 1 if kind == "missed" else 0
    sub = reads.take(reads.truth == truth_value)
    # a miss is a present finding called absent; a false positive an absent one called present
    event = sub.call != truth_value
    or_diff: Comparison | None = None
    or_error = crossing
    or_arms: tuple[SingleTreatment | None, SingleTreatment | None] = (None, None)
    if or_error is None:
        try:
            res = or_pooled_proportion(
                sub.reader, sub.assisted.astype(np.int64), sub.case, event, alpha
            )
        except ValueError as error:
            or_error = str(error)
        else:
            d = res.difference
            or_diff = Comparison(d.estimate, d.se, d.df, d.ci_lower, d.ci_upper, d.p_value)
            or_arms = res.arms
    arms = []
    for i, arm in enumerate(ARMS):
        in_arm = sub.assisted == (i == 1)
        arms.append(_arm_rate(arm, event[in_arm], sub.case[in_arm], or_arms[i], alpha))
    gee: GeeComparison | None = None
    gee_error: str | None = None
    if event.size == 0:
        gee_error = "no reads"
    else:
        try:
            gee = _gee_part(sub, event, alpha)
        except (ValueError, np.linalg.LinAlgError) as error:
            gee_error = str(error)
    return RateAnalysis(kind, tuple(arms), or_diff, or_error, gee, gee_error)


def _split(reads: _Reads, thresholds: NDArray[np.float64]) -> list[MissSplit]:
    miss = (reads.truth == 1) & (reads.call == 0)
    prob = reads.ai_probability[miss]
    avail = ~np.isnan(prob)
    flagged = avail & (prob >= thresholds[reads.finding[miss]])
    assisted = reads.assisted[miss]
    out = []
    for i, a in enumerate(ARMS):
        in_arm = assisted == (i == 1)
        out.append(
            MissSplit(
                a,
                int(in_arm.sum()),
                int((flagged & in_arm).sum()),
                int((avail & ~flagged & in_arm).sum()),
                int((~avail & in_arm).sum()),
            )
        )
    return out


def missed_findings(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None = None,
    ai_threshold: float | dict[str, float] = 0.5,
    alpha: float = 0.05,
) -> MissedFindingsResult:
    """Missed-finding and false-positive rates per arm, per finding type and pooled.

    Parameters
    ----------
    long
        The long reads frame of DESIGN.md (needs ``reader, case, arm, finding, truth, call,
        ai_probability``); arms ``unassisted`` and ``assisted``.
    significant
        Finding types flagged clinically significant, pooled into the extra entry ``pooled``;
        ``None`` pools every finding type (no pooled entry when there is only one).
    ai_threshold
        The model's operating threshold for the AI's call, one for all or per finding type
        (the long frame does not carry it); used for the split of misses.
    alpha
        Two-sided level of every interval.

    Returns
    -------
    MissedFindingsResult
        Per arm the reader-averaged rate with its OR interval when the design is fully crossed,
        else the pooled rate with a case-clustered interval and the reason in ``or_error``;
        the OR and GEE comparisons. Methods and references: module docstring.

    Raises
    ------
    ValueError
        Missing columns, an arm missing, ``truth``/``call`` not 0/1, unknown significant types.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    reads = _check(long)
    thresholds = ai_threshold if isinstance(ai_threshold, dict) else {}
    default = 0.5 if isinstance(ai_threshold, dict) else float(ai_threshold)
    present = np.bincount(reads.finding, minlength=len(reads.findings)) > 0
    types = [f for f, p in zip(reads.findings, present, strict=True) if p]
    pool = list(types if significant is None else significant)
    unknown = sorted(set(pool) - set(types))
    if unknown:
        raise ValueError(f"significant finding type(s) not in the data: {', '.join(unknown)}")
    thr = np.array([thresholds.get(f, default) for f in reads.findings], dtype=np.float64)
    groups: list[tuple[str, list[str]]] = [(t, [t]) for t in types]
    if len(pool) > 1 or (significant is not None and pool):
        groups.append(("pooled", pool))
    out = []
    for name, members in groups:
        codes = [reads.findings.index(m) for m in members]
        sub = reads.take(np.isin(reads.finding, codes))
        crossing = _crossing_error(sub)
        out.append(
            FindingMisses(
                finding=name,
                findings_pooled=tuple(members),
                missed=_rate_analysis(sub, "missed", crossing, alpha),
                false_positive=_rate_analysis(sub, "false_positive", crossing, alpha),
                split=tuple(_split(sub, thr)),
            )
        )
    all_thr = {t: thresholds.get(t, default) for t in types}
    return MissedFindingsResult(tuple(out), all_thr, alpha)
