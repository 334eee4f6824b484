"""Missed findings and false positives per arm, with reader- and case-clustered inference.

Estimands (per finding type, and pooled over a chosen set of clinically significant types):

* **missed-finding rate** of an arm: the reader-averaged proportion of truth-present findings
  that the reader called absent, ``1 - sensitivity``; the difference ``assisted - unassisted``;
* **false-positive rate**: the reader-averaged proportion of truth-absent findings called
  present, ``1 - specificity``, and its difference likewise.

Primary analysis: the Obuchowski-Rockette MRMC analysis of the binary call
(:func:`analysis.mrmc.or_analysis` with ``metric="sensitivity"`` / ``"specificity"``, jackknife
covariance, random readers and random cases, Hillis df), as MRMCaov's ``binary_sens`` /
``binary_spec``. Because ``missed = 1 - sensitivity``, the OR difference
``sens(unassisted) - sens(assisted)`` *is* ``missed(assisted) - missed(unassisted)``, with the same
SE, df and p-value; the per-arm intervals are ``1 -`` the OR single-treatment intervals. The OR
analysis needs a fully crossed design (every reader reads every case in both arms); otherwise it
is skipped and the reason is kept in ``or_error``. In the pooled analysis the unit that OR calls a
"case" is one finding of one case (``case|finding``).

Sensitivity analysis: a GEE logistic model (Liang & Zeger 1986) ``logit P(miss) = b0 + b1
assisted`` fitted with statsmodels on the reads of truth-present findings, **clusters = cases with
an exchangeable working correlation** (reads of one case by several readers and arms are
correlated; there are usually too few readers for a reader-clustered sandwich), robust
(sandwich) covariance. It reports the odds ratio ``exp(b1)`` with its Wald CI and p-value, and
the rate difference ``expit(b0 + b1) - expit(b0)`` with a delta-method CI. Reader-level
clustering is not modelled by the GEE, which is why it is secondary.

Split of misses: each missed finding is "AI flagged, reader dismissed" when the AI's probability
was at or above the model's operating threshold, "AI missed too" otherwise (or "AI unavailable").

References
----------
Obuchowski NA, Rockette HE (1995). Hypothesis testing of diagnostic accuracy for multiple readers
and multiple tests. Commun Stat Simul Comput 24(2):285-308. doi:10.1080/03610919508813243
Hillis SL (2007). Stat Med 26(3):596-619. doi:10.1002/sim.2532
Liang KY, Zeger SL (1986). Longitudinal data analysis using generalized linear models.
Biometrika 73(1):13-22. doi:10.1093/biomet/73.1.13
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from analysis._common import jsonable_float as _num
from analysis.standalone import wilson

ARMS: tuple[str, str] = ("unassisted", "assisted")
Kind = Literal["missed", "false_positive"]
_NEEDED = ("reader", "case", "arm", "finding", "truth", "call", "ai_probability")


@dataclass(frozen=True)
class ArmRate:
    """A rate in one arm: reader-averaged proportion, pooled counts and its interval."""

    arm: str
    n: int
    events: int
    rate: float
    ci_lower: float
    ci_upper: float
    ci_method: str  # "OR single-treatment" or "Wilson (ignores clustering)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "n": self.n,
            "events": self.events,
            "rate": _num(self.rate),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "ci_method": self.ci_method,
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "odds_ratio": _num(self.odds_ratio),
            "or_ci_lower": _num(self.or_ci_lower),
            "or_ci_upper": _num(self.or_ci_upper),
            "p_value": _num(self.p_value),
            "difference": self.difference.to_dict(),
            "working_correlation": _num(self.working_correlation),
            "clusters": "case",
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


def _check(long: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _NEEDED if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    arms = set(long["arm"].astype(str))
    if not set(ARMS) <= arms:
        raise ValueError(f"need both arms {ARMS[0]!r} and {ARMS[1]!r}, got {sorted(arms)}")
    for col in ("truth", "call"):
        values = pd.to_numeric(long[col], errors="coerce")
        if not values.isin([0, 1]).all():
            raise ValueError(f"{col} must be 0 or 1 in every row")
    out = long.loc[long["arm"].astype(str).isin(ARMS), list(_NEEDED)].copy()
    out["arm"] = out["arm"].astype(str)
    out["reader"] = out["reader"].astype(str)
    out["case"] = out["case"].astype(str)
    out["finding"] = out["finding"].astype(str)
    out["truth"] = pd.to_numeric(out["truth"]).astype(np.int64)
    out["call"] = pd.to_numeric(out["call"]).astype(np.int64)
    out["ai_probability"] = pd.to_numeric(out["ai_probability"], errors="coerce")
    return out


def _wilson(events: int, n: int, alpha: float) -> tuple[float, float]:
    interval = wilson(events, n, alpha)
    return interval.ci_lower, interval.ci_upper


def _or_part(
    reads: pd.DataFrame, kind: Kind, alpha: float
) -> tuple[dict[str, tuple[float, float, float]] | None, Comparison | None, str | None]:
    """OR MRMC on the binary call: per-arm (rate, lo, hi) and the assisted - unassisted diff."""
    from analysis.mrmc import or_analysis

    frame = pd.DataFrame(
        {
            "reader": reads["reader"],
            "treatment": reads["arm"],
            "case": reads["unit"],
            "truth": reads["truth"],
            "rating": reads["call"],
        }
    )
    # unassisted first, so the OR pair "unassisted - assisted" of sensitivity (specificity) is
    # the assisted - unassisted difference of the missed (false-positive) rate
    frame = frame.sort_values("treatment", key=lambda s: s.map(ARMS.index), kind="stable")
    try:
        res = or_analysis(
            frame,
            metric="sensitivity" if kind == "missed" else "specificity",
            cov="jackknife",
            factors="RRRC",
            alpha=alpha,
        )
    except ValueError as error:
        return None, None, str(error)
    arms = {
        arm: (1.0 - s.estimate, 1.0 - s.ci_upper, 1.0 - s.ci_lower)
        for arm, s in res.single_treatment.items()
    }
    d = res.differences[0]
    if d.pair == f"{ARMS[0]} - {ARMS[1]}":
        comp = Comparison(d.estimate, d.se, d.df, d.ci_lower, d.ci_upper, d.p_value)
    else:  # the engine named the pair the other way round: flip it
        comp = Comparison(-d.estimate, d.se, d.df, -d.ci_upper, -d.ci_lower, d.p_value)
    return arms, comp, None


def _gee_part(reads: pd.DataFrame, alpha: float) -> tuple[GeeComparison | None, str | None]:
    """GEE logistic, clusters = cases, exchangeable working correlation, robust covariance."""
    import statsmodels.api as sm
    from statsmodels.genmod.cov_struct import Exchangeable

    y = reads["event"].to_numpy(dtype=np.float64)
    x = (reads["arm"] == ARMS[1]).to_numpy(dtype=np.float64)
    for arm_value in (0.0, 1.0):
        share = y[x == arm_value].mean() if (x == arm_value).any() else math.nan
        if not 0.0 < share < 1.0:
            return None, "no events or all events in an arm: the logistic model is not estimable"
    exog = np.column_stack([np.ones_like(x), x])
    groups = pd.factorize(reads["unit"])[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.GEE(y, exog, groups=groups, family=sm.families.Binomial(),
                           cov_struct=Exchangeable())  # fmt: skip
            fit = model.fit()
    except (ValueError, np.linalg.LinAlgError) as error:
        return None, f"GEE failed: {error}"
    b = np.asarray(fit.params, dtype=np.float64)
    cov = np.asarray(fit.cov_params(), dtype=np.float64)
    z = -float(special.ndtri(alpha / 2))
    se1 = math.sqrt(cov[1, 1])
    p = 2.0 * float(special.ndtr(-(abs(b[1]) / se1)))
    p_u, p_a = float(special.expit(b[0])), float(special.expit(b[0] + b[1]))
    # delta method for p_a - p_u: gradient w.r.t. (b0, b1)
    grad = np.array([p_a * (1 - p_a) - p_u * (1 - p_u), p_a * (1 - p_a)])
    se_d = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    diff = p_a - p_u
    p_d = 2.0 * float(special.ndtr(-(abs(diff) / se_d))) if se_d > 0 else math.nan
    comp = Comparison(diff, se_d, None, diff - z * se_d, diff + z * se_d, p_d)
    rho = float(getattr(model.cov_struct, "dep_params", math.nan))
    return (
        GeeComparison(
            math.exp(b[1]), math.exp(b[1] - z * se1), math.exp(b[1] + z * se1), p, comp, rho
        ),
        None,
    )


def _rate_analysis(reads: pd.DataFrame, kind: Kind, alpha: float) -> RateAnalysis:
    truth_value = 1 if kind == "missed" else 0
    sub = reads[reads["truth"] == truth_value].copy()
    # a miss is a present finding called absent; a false positive an absent one called present
    sub["event"] = (sub["call"] != truth_value).astype(np.int64)
    or_arms, or_diff, or_error = _or_part(reads, kind, alpha)
    arms = []
    for arm in ARMS:
        a = sub[sub["arm"] == arm]
        n, events = len(a), int(a["event"].sum())
        if or_arms is not None:
            rate, lo, hi = or_arms[arm]
            method = "OR single-treatment"
        else:
            per_reader = a.groupby("reader")["event"].mean()
            rate = float(per_reader.mean()) if len(per_reader) else math.nan
            lo, hi = _wilson(events, n, alpha)
            method = "Wilson (ignores clustering)"
        arms.append(ArmRate(arm, n, events, rate, lo, hi, method))
    gee, gee_error = _gee_part(sub, alpha) if len(sub) else (None, "no reads")
    return RateAnalysis(kind, tuple(arms), or_diff, or_error, gee, gee_error)


def _split(reads: pd.DataFrame, thresholds: dict[str, float], default: float) -> list[MissSplit]:
    miss = reads[(reads["truth"] == 1) & (reads["call"] == 0)]
    thr = miss["finding"].map(lambda f: thresholds.get(f, default)).to_numpy(dtype=np.float64)
    prob = miss["ai_probability"].to_numpy(dtype=np.float64)
    avail = ~np.isnan(prob)
    flagged = avail & (prob >= thr)
    arm = miss["arm"].to_numpy()
    return [
        MissSplit(
            a,
            int((arm == a).sum()),
            int((flagged & (arm == a)).sum()),
            int((avail & ~flagged & (arm == a)).sum()),
            int((~avail & (arm == a)).sum()),
        )
        for a in ARMS
    ]


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
        Methods and references: module docstring.

    Raises
    ------
    ValueError
        Missing columns, an arm missing, ``truth``/``call`` not 0/1, unknown significant types.
    """
    reads = _check(long)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    thresholds = ai_threshold if isinstance(ai_threshold, dict) else {}
    default = 0.5 if isinstance(ai_threshold, dict) else float(ai_threshold)
    types = list(pd.unique(reads["finding"]))
    pool = list(types if significant is None else significant)
    unknown = sorted(set(pool) - set(types))
    if unknown:
        raise ValueError(f"significant finding type(s) not in the data: {', '.join(unknown)}")
    groups: list[tuple[str, list[str]]] = [(t, [t]) for t in types]
    if len(pool) > 1 or (significant is not None and pool):
        groups.append(("pooled", pool))
    out = []
    for name, members in groups:
        sub = reads[reads["finding"].isin(members)].copy()
        sub["unit"] = sub["case"] + "|" + sub["finding"] if len(members) > 1 else sub["case"]
        out.append(
            FindingMisses(
                finding=name,
                findings_pooled=tuple(members),
                missed=_rate_analysis(sub, "missed", alpha),
                false_positive=_rate_analysis(sub, "false_positive", alpha),
                split=tuple(_split(sub, thresholds, default)),
            )
        )
    all_thr = {t: thresholds.get(t, default) for t in types}
    return MissedFindingsResult(tuple(out), all_thr, alpha)
