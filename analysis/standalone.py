"""AI standalone performance, per subgroup, and the AI against the unassisted readers.

Estimands, per finding type:

* **AUC** of the AI probability (empirical, Mann-Whitney, ties one half) with the DeLong (1988)
  standard error and the Wald interval ``AUC +/- z se``, clipped to [0, 1];
* **sensitivity** and **specificity** of the AI's call ``ai_probability >= threshold`` at the
  model's operating threshold, with Wilson (1927) score intervals
  (``statsmodels.stats.proportion.proportion_confint(method="wilson")``);
* the same per subgroup of ``site``, ``manufacturer`` and ``modality`` (how domain shift shows);
  a subgroup with one truth class has no AUC (NaN) and no sensitivity or specificity for the
  missing class;
* **AI vs the unassisted readers**: ``AUC(AI) - mean reader AUC`` with random readers and random
  cases by the "2T-RRRC" method of Chakraborty (RJafroc ``StSignificanceTestingCadVsRad``): the AI
  is a second treatment whose rating of each case is copied to every reader, and the
  Obuchowski-Rockette RRRC analysis (jackknife covariance, Hillis df) compares the two
  treatments. The readers' ratings are their confidence (0-100) in the unassisted arm. Only
  cases with an AI probability and read by every reader are used.

References
----------
DeLong ER, DeLong DM, Clarke-Pearson DL (1988). Biometrics 44(3):837-845. doi:10.2307/2531595
Wilson EB (1927). Probable inference, the law of succession, and statistical inference.
J Am Stat Assoc 22(158):209-212. doi:10.1080/01621459.1927.10502953
Chakraborty DP (2017). Observer Performance Methods for Diagnostic Imaging. CRC Press,
chapter "Standalone CAD vs. radiologists". doi:10.1201/9781351228190
Hillis SL (2007). Stat Med 26(3):596-619. doi:10.1002/sim.2532
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from analysis._common import jsonable_float as _num
from analysis.longreads import text_ids

SUBGROUPS: tuple[str, ...] = ("site", "manufacturer", "modality")
_NEEDED = ("reader", "case", "arm", "finding", "truth", "confidence", "ai_probability")


@dataclass(frozen=True)
class Proportion:
    """A proportion with its Wilson interval."""

    events: int
    n: int
    estimate: float
    ci_lower: float
    ci_upper: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "n": self.n,
            "estimate": _num(self.estimate),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
        }


@dataclass(frozen=True)
class AIPerformance:
    """AI standalone performance in one (sub)group of cases."""

    group: str  # "all", "site", "manufacturer" or "modality"
    level: str
    n_positive: int
    n_negative: int
    auc: float
    auc_se: float
    auc_ci_lower: float
    auc_ci_upper: float
    sensitivity: Proportion
    specificity: Proportion

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "level": self.level,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "auc": _num(self.auc),
            "auc_se": _num(self.auc_se),
            "auc_ci_lower": _num(self.auc_ci_lower),
            "auc_ci_upper": _num(self.auc_ci_upper),
            "sensitivity": self.sensitivity.to_dict(),
            "specificity": self.specificity.to_dict(),
        }


@dataclass(frozen=True)
class AIVersusReaders:
    """``AUC(AI) - mean AUC of the unassisted readers`` by the 2T-RRRC OR analysis."""

    ai_auc: float
    readers_auc: float
    reader_auc: dict[str, float]
    estimate: float
    se: float
    df: float | None
    ci_lower: float
    ci_upper: float
    p_value: float
    n_cases: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "2T-RRRC (AI replicated as a second treatment; OR jackknife, Hillis df)",
            "ai_auc": _num(self.ai_auc),
            "readers_auc": _num(self.readers_auc),
            "reader_auc": {k: _num(v) for k, v in self.reader_auc.items()},
            "estimate": _num(self.estimate),
            "se": _num(self.se),
            "df": _num(self.df),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "p_value": _num(self.p_value),
            "n_cases": self.n_cases,
        }


@dataclass(frozen=True)
class FindingStandalone:
    """AI standalone results of one finding type."""

    finding: str
    threshold: float
    overall: AIPerformance
    subgroups: tuple[AIPerformance, ...]
    versus_readers: AIVersusReaders | None
    versus_readers_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "threshold": self.threshold,
            "overall": self.overall.to_dict(),
            "subgroups": [s.to_dict() for s in self.subgroups],
            "versus_readers": None
            if self.versus_readers is None
            else self.versus_readers.to_dict(),
            "versus_readers_error": self.versus_readers_error,
        }


@dataclass(frozen=True)
class StandaloneResult:
    """Per finding type AI standalone results."""

    findings: tuple[FindingStandalone, ...]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "findings": [f.to_dict() for f in self.findings]}


def wilson(events: int, n: int, alpha: float = 0.05) -> Proportion:
    """Proportion ``events / n`` with its Wilson score interval (NaN when ``n == 0``)."""
    if n == 0:
        return Proportion(0, 0, math.nan, math.nan, math.nan)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(events, n, alpha=alpha, method="wilson")
    return Proportion(events, n, events / n, float(lo), float(hi))


def ai_performance(
    truth: np.ndarray[Any, Any],
    probability: np.ndarray[Any, Any],
    *,
    threshold: float,
    alpha: float = 0.05,
    group: str = "all",
    level: str = "all",
) -> AIPerformance:
    """AUC (DeLong CI) and sensitivity/specificity (Wilson CIs) of one set of cases.

    ``truth`` 0/1 and ``probability`` are one value per case. See the module docstring.
    """
    from analysis.roc import delong, empirical_auc

    t = np.asarray(truth, dtype=np.int64)
    p = np.asarray(probability, dtype=np.float64)
    pos, neg = p[t == 1], p[t == 0]
    call = p >= threshold
    sens = wilson(int(call[t == 1].sum()), int(pos.size), alpha)
    spec = wilson(int((~call[t == 0]).sum()), int(neg.size), alpha)
    auc = se = lo = hi = math.nan
    if pos.size >= 2 and neg.size >= 2:
        res = delong(pos, neg)
        auc, se = float(res.auc[0]), float(res.se[0])
        z = -float(special.ndtri(alpha / 2))
        lo, hi = max(0.0, auc - z * se), min(1.0, auc + z * se)
    elif pos.size and neg.size:
        auc = float(empirical_auc(pos, neg))
    return AIPerformance(group, level, int(pos.size), int(neg.size), auc, se, lo, hi, sens, spec)


def _versus_readers(
    reads: pd.DataFrame, cases: pd.DataFrame, alpha: float
) -> tuple[AIVersusReaders | None, str | None]:
    from analysis.mrmc import or_analysis

    un = reads[reads["arm"] == "unassisted"]
    if un.empty:
        return None, "no unassisted reads"
    n_readers = un["reader"].nunique()
    if n_readers < 2:
        return None, "the OR analysis needs at least 2 readers"
    with_ai = cases.index[cases["ai_probability"].notna()]
    read_by_all = un.groupby("case")["reader"].nunique()
    keep = read_by_all.index[read_by_all == n_readers].intersection(with_ai)
    un = un[un["case"].isin(keep)]
    ai = cases.loc[keep]
    # The AI as one more "reader" per reader (its rating of each case) beside their unassisted
    # reads, built from integer codes: the IDs stay categoricals, no string per row.
    reader_ids, case_ids = pd.Categorical(un["reader"]), pd.Categorical(un["case"])
    readers = pd.unique(reader_ids)  # in order of appearance
    ai_cases = case_ids.categories.get_indexer(ai.index)
    n_ai = len(readers) * len(ai)
    both = pd.DataFrame(
        {
            "reader": pd.Categorical.from_codes(
                np.r_[np.repeat(readers.codes, len(ai)), reader_ids.codes],
                dtype=reader_ids.dtype,
            ),
            "treatment": pd.Categorical.from_codes(
                np.r_[np.zeros(n_ai, np.int8), np.ones(len(un), np.int8)],
                categories=pd.Index(["AI", "unassisted"], dtype="str"),
            ),
            "case": pd.Categorical.from_codes(
                np.r_[np.tile(ai_cases, len(readers)), case_ids.codes], dtype=case_ids.dtype
            ),
            "truth": np.r_[np.tile(ai["truth"].to_numpy(), len(readers)), un["truth"].to_numpy()],
            "rating": np.r_[
                np.tile(ai["ai_probability"].to_numpy(dtype=np.float64), len(readers)),
                pd.to_numeric(un["confidence"]).to_numpy(dtype=np.float64),
            ],
        }
    )
    try:
        res = or_analysis(both, alpha=alpha)
    except ValueError as error:
        return None, str(error)
    d = res.differences[0]
    sign = 1.0 if d.pair == "AI - unassisted" else -1.0
    lo, hi = sorted((sign * d.ci_lower, sign * d.ci_upper))
    reader_auc = {rv.reader: rv.value for rv in res.reader_value if rv.treatment == "unassisted"}
    return (
        AIVersusReaders(
            ai_auc=float(res.treatment_value["AI"]),
            readers_auc=float(res.treatment_value["unassisted"]),
            reader_auc=reader_auc,
            estimate=sign * d.estimate,
            se=d.se,
            df=d.df,
            ci_lower=lo,
            ci_upper=hi,
            p_value=d.p_value,
            n_cases=len(keep),
        ),
        None,
    )


def ai_standalone(
    long: pd.DataFrame,
    *,
    ai_threshold: float | dict[str, float] = 0.5,
    subgroups: tuple[str, ...] = SUBGROUPS,
    alpha: float = 0.05,
) -> StandaloneResult:
    """AI standalone performance per finding type, per subgroup, and against the readers.

    Parameters
    ----------
    long
        The long reads frame (DESIGN.md). The AI probability and truth are properties of a case
        and finding type; reads only supply them (and the readers' unassisted confidence).
    ai_threshold
        The model's operating threshold, one for all finding types or one per type.
    subgroups
        Case attributes to split by (those absent from the frame are skipped).
    alpha
        Two-sided level of every interval.

    Raises
    ------
    ValueError
        Missing columns, or an AI probability or truth that differs between reads of the same
        case and finding type.
    """
    missing = [c for c in _NEEDED if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    present = [g for g in subgroups if g in long.columns]
    # Only the columns used here, so the per finding type splits copy nothing else.
    reads = long.loc[:, list(dict.fromkeys([*_NEEDED, *present]))]
    for col in ("reader", "case", "arm", "finding"):
        reads[col] = text_ids(reads[col])
    reads["ai_probability"] = pd.to_numeric(reads["ai_probability"], errors="coerce")
    reads["truth"] = pd.to_numeric(reads["truth"], errors="coerce")
    if not reads["truth"].isin([0, 1]).all():
        raise ValueError("truth must be 0 or 1 in every row")
    out = []
    for finding, g in reads.groupby("finding", sort=False):
        fin = str(finding)
        per_case = g.groupby("case", sort=False)
        for col in ("ai_probability", "truth"):
            if (per_case[col].nunique(dropna=False) > 1).any():
                raise ValueError(f"{col} differs between reads of one case ({fin})")
        cases = per_case[["truth", "ai_probability", *present]].first()
        thr = (
            float(ai_threshold.get(fin, 0.5))
            if isinstance(ai_threshold, dict)
            else float(ai_threshold)
        )
        scored = cases[cases["ai_probability"].notna()]
        truth = scored["truth"].to_numpy(dtype=np.int64)
        prob = scored["ai_probability"].to_numpy(dtype=np.float64)
        overall = ai_performance(truth, prob, threshold=thr, alpha=alpha)
        subs = [
            ai_performance(
                truth[mask], prob[mask], threshold=thr, alpha=alpha, group=col, level=str(lvl)
            )
            for col in present
            for lvl in pd.unique(scored[col].astype(str))
            for mask in [scored[col].astype(str).to_numpy() == lvl]
        ]
        vs, err = _versus_readers(g, cases, alpha)
        out.append(FindingStandalone(fin, thr, overall, tuple(subs), vs, err))
    return StandaloneResult(tuple(out), alpha)
