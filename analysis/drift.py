"""Drift of the AI's score distribution between sites (dataset shift).

A model validated on one hospital's images can score another hospital's images differently
(other patients, scanners, protocols). Per finding type, each site's distribution of the AI
probability (one value per case) is compared with a reference site's (the first site, unless
named):

* the two-sample **Kolmogorov-Smirnov** statistic ``D = sup |F_site(x) - F_ref(x)|`` with its
  exact or asymptotic p-value (``scipy.stats.ks_2samp``, two-sided);
* the **population stability index** ``PSI = sum_b (p_b - q_b) ln(p_b / q_b)`` over ``bins``
  bins at the reference site's quantiles, where ``q_b`` and ``p_b`` are the reference and site
  fractions in bin ``b`` (each floored at ``1e-4`` so an empty bin stays finite). By the usual
  rule of thumb PSI < 0.1 is stable, 0.1-0.25 a moderate shift, > 0.25 a major shift.

A shift in the scores is not by itself a loss of accuracy (a site may simply see more disease),
so the positive and negative cases are compared separately too (``stratum`` ``positive`` /
``negative``), next to all cases together.

References
----------
Massey FJ (1951). The Kolmogorov-Smirnov test for goodness of fit. J Am Stat Assoc 46(253):68-78.
doi:10.1080/01621459.1951.10500769
Yurdakul B (2018). Statistical properties of population stability index. Dissertation, Western
Michigan University. https://scholarworks.wmich.edu/dissertations/3208
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._common import jsonable_float as _num

_FLOOR = 1e-4
STRATA: tuple[str, ...] = ("all", "positive", "negative")


def psi(reference: np.ndarray[Any, Any], sample: np.ndarray[Any, Any], bins: int = 10) -> float:
    """Population stability index of ``sample`` against ``reference`` (module docstring).

    Bin edges are the reference's quantiles (ties merged); NaN when either side is empty.
    """
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(sample, dtype=np.float64)
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if ref.size == 0 or new.size == 0:
        return math.nan
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    q = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    p = np.bincount(np.searchsorted(inner, new, side="right"), minlength=inner.size + 1)
    qf = np.maximum(q / ref.size, _FLOOR)
    pf = np.maximum(p / new.size, _FLOOR)
    return float(np.sum((pf - qf) * np.log(pf / qf)))


@dataclass(frozen=True)
class SiteDrift:
    """One site's AI scores against the reference site's, for one finding and stratum."""

    finding: str
    stratum: str
    site: str
    n: int
    mean: float
    median: float
    ks_statistic: float
    ks_p_value: float
    psi: float

    @property
    def level(self) -> str:
        """``stable``, ``moderate`` or ``major`` by the PSI rule of thumb (``n/a`` if undefined)."""
        if not math.isfinite(self.psi):
            return "n/a"
        return "stable" if self.psi < 0.1 else "moderate" if self.psi <= 0.25 else "major"

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "stratum": self.stratum,
            "site": self.site,
            "n": self.n,
            "mean": _num(self.mean),
            "median": _num(self.median),
            "ks_statistic": _num(self.ks_statistic),
            "ks_p_value": _num(self.ks_p_value),
            "psi": _num(self.psi),
            "level": self.level,
        }


@dataclass(frozen=True)
class DriftResult:
    """Per finding type and stratum, every site against the reference site."""

    reference: str
    bins: int
    rows: tuple[SiteDrift, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "bins": self.bins,
            "method": "two-sample Kolmogorov-Smirnov and PSI against the reference site",
            "rows": [r.to_dict() for r in self.rows],
        }


def case_scores(long: pd.DataFrame, *, by: str = "site") -> pd.DataFrame:
    """One row per case and finding type: ``finding, case, <by>, truth, ai_probability``.

    Rows without an AI probability are dropped; the first value per case is kept (the
    probability and truth are properties of the case, not of the read).
    """
    needed = ("case", "finding", "truth", "ai_probability", by)
    missing = [c for c in needed if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    f = long.loc[:, list(needed)].copy()
    f["ai_probability"] = pd.to_numeric(f["ai_probability"], errors="coerce")
    f["truth"] = pd.to_numeric(f["truth"], errors="coerce")
    f = f[f["ai_probability"].notna()]
    for col in ("case", "finding", by):
        f[col] = f[col].astype(str)
    return f.drop_duplicates(subset=["finding", "case"]).reset_index(drop=True)


def score_drift(
    long: pd.DataFrame, *, by: str = "site", reference: str | None = None, bins: int = 10
) -> DriftResult:
    """Compare each site's AI score distribution with the reference site's (module docstring).

    Parameters
    ----------
    long
        The long reads frame (DESIGN.md), or any frame with ``case, finding, truth,
        ai_probability`` and the ``by`` column.
    by
        The grouping column (``site``; ``manufacturer`` or ``modality`` work the same way).
    reference
        The reference group; ``None`` takes the first in order of appearance.
    bins
        PSI bins (reference quantiles).

    Raises
    ------
    ValueError
        Missing columns, no AI probabilities at all, or an unknown ``reference``.
    """
    scores = case_scores(long, by=by)
    if scores.empty:
        raise ValueError("no AI probabilities to compare")
    groups = [str(g) for g in pd.unique(scores[by])]
    ref = groups[0] if reference is None else reference
    if ref not in groups:
        raise ValueError(f"reference {by} {ref!r} has no AI scores; have {groups}")
    rows: list[SiteDrift] = []
    for finding in pd.unique(scores["finding"]):
        sub = scores[scores["finding"] == finding]
        for stratum in STRATA:
            part = sub if stratum == "all" else sub[sub["truth"] == (stratum == "positive")]
            ref_scores = part.loc[part[by] == ref, "ai_probability"].to_numpy(dtype=np.float64)
            for group in groups:
                vals = part.loc[part[by] == group, "ai_probability"].to_numpy(dtype=np.float64)
                if vals.size and ref_scores.size:
                    ks = stats.ks_2samp(vals, ref_scores)
                    d, p = float(ks.statistic), float(ks.pvalue)
                else:
                    d = p = math.nan
                rows.append(
                    SiteDrift(
                        finding=str(finding),
                        stratum=stratum,
                        site=group,
                        n=int(vals.size),
                        mean=float(vals.mean()) if vals.size else math.nan,
                        median=float(np.median(vals)) if vals.size else math.nan,
                        ks_statistic=d,
                        ks_p_value=p,
                        psi=psi(ref_scores, vals, bins) if vals.size else math.nan,
                    )
                )
    return DriftResult(reference=ref, bins=bins, rows=tuple(rows))


def score_distribution_figure(long: pd.DataFrame, *, by: str = "site") -> Any:
    """Empirical CDF of the AI probability per site, one panel per finding type (plotly)."""
    from plotly.subplots import make_subplots

    scores = case_scores(long, by=by)
    findings = [str(f) for f in pd.unique(scores["finding"])]
    groups = [str(g) for g in pd.unique(scores[by])]
    fig = make_subplots(rows=1, cols=max(1, len(findings)), subplot_titles=findings or [""])
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    for col, finding in enumerate(findings, start=1):
        sub = scores[scores["finding"] == finding]
        for g_idx, group in enumerate(groups):
            vals = np.sort(sub.loc[sub[by] == group, "ai_probability"].to_numpy(np.float64))
            if not vals.size:
                continue
            fig.add_scatter(
                x=vals,
                y=np.arange(1, vals.size + 1) / vals.size,
                mode="lines",
                line={"shape": "hv", "color": palette[g_idx % len(palette)]},
                name=f"{group} (n={vals.size})",
                legendgroup=group,
                showlegend=col == 1,
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="AI probability", range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text="cumulative fraction of cases", row=1, col=1)
    fig.update_layout(
        title=f"AI score distribution per {by} (empirical CDF)",
        template="plotly_white",
        height=420,
    )
    return fig
