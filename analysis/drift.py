"""Drift of the AI's score distribution between sites (dataset shift), as a test.

A model validated on one hospital's images can score another hospital's images differently
(other patients, scanners, protocols). Per finding type and stratum, each site's distribution of
the AI probability (one value per case) is compared with a reference site's (unless named, the
site with the most scored cases, the first by name among equals):

* the two-sample **Kolmogorov-Smirnov** test of ``H0: F_site = F_ref``, statistic
  ``D = sup |F_site(x) - F_ref(x)|``, two-sided, with scipy's exact p-value (Hodges 1958) where
  it computes one (samples under 10,000; at the smallest possible ``D`` scipy may fall back)
  and the asymptotic one otherwise (``scipy.stats.ks_2samp(method="auto")``). Ties (equal
  probabilities) make it conservative;
* **multiplicity control** by Holm's step-down procedure: with ``m`` comparisons and ordered
  p-values ``p_(1) <= ... <= p_(m)``, ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``
  (``ks_p_adjusted``). The family is every comparison of the report (all finding types, strata
  and sites; ``family="report"``), so the chance that a study in which nothing shifted shows any
  alarm is at most ``alpha``, whatever the dependence between the comparisons; ``family=
  "finding_stratum"`` adjusts within each finding type x stratum instead (each family's sites);
* the **population stability index** ``PSI = sum_b (p_b - q_b) ln(p_b / q_b)`` over ``bins``
  bins at the reference site's quantiles, where ``q_b`` and ``p_b`` are the reference and site
  fractions in bin ``b`` (each floored at ``1e-4`` so an empty bin stays finite), as a
  descriptive effect size, with a ``1 - alpha`` percentile bootstrap interval (Efron and
  Tibshirani 1993, ch. 13): both groups are resampled with replacement, ``n_boot`` times, the bin
  edges re-estimated from each resampled reference; the random stream of each comparison is
  seeded by ``seed`` and the comparison's names, so it does not depend on the other rows.

PSI is biased upward in small samples: with no shift at all it is about ``(1/n + 1/m)`` times a
chi-square with ``bins - 1`` df (Yurdakul 2018), far above the 0.1 / 0.25 rules of thumb at 20
cases per site, and the bootstrap replicates carry that bias a second time, so with little or no
shift the interval may lie above the estimate (7% to 27% of the intervals at 20 to 50 cases per
site in ``benchmarks/validate_drift.md``). That is why PSI alone never raises an alarm:
``level`` is ``stable`` unless the Holm-adjusted test rejects at ``alpha``; a rejected comparison
is then graded by PSI: ``minor`` (PSI < 0.1: a detectable but small shift), ``moderate``
(0.1-0.25) or ``major`` (> 0.25). The reference site's own row has ``level`` ``reference`` and no
test; ``n/a`` marks a comparison without scores on one side.

A shift in the scores is not by itself a loss of accuracy (a site may simply see more disease),
so the positive and negative cases are compared separately too (``stratum`` ``positive`` /
``negative``), next to all cases together.

References
----------
Massey FJ (1951). The Kolmogorov-Smirnov test for goodness of fit. J Am Stat Assoc 46(253):68-78.
doi:10.1080/01621459.1951.10500769
Hodges JL (1958). The significance probability of the Smirnov two-sample test. Ark Mat
3(5):469-486. doi:10.1007/BF02589501
Holm S (1979). A simple sequentially rejective multiple test procedure. Scand J Stat 6(2):65-70.
https://www.jstor.org/stable/4615733
Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap. Chapman & Hall.
doi:10.1007/978-1-4899-4541-9
Yurdakul B (2018). Statistical properties of population stability index. Dissertation, Western
Michigan University. https://scholarworks.wmich.edu/dissertations/3208
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._common import holm_adjust
from analysis._common import jsonable_float as _num
from analysis.longreads import text_ids

_FLOOR = 1e-4
STRATA: tuple[str, ...] = ("all", "positive", "negative")
FAMILIES: tuple[str, ...] = ("report", "finding_stratum")


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


def _bin_fractions(x: np.ndarray[Any, Any], edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per row of ``x`` (B x n, each row sorted), the fraction of values in each bin of that
    row's ``edges``.

    A value's bin is the number of edges at or below it, as ``searchsorted(side="right")`` in
    :func:`psi`. Equal edges are not merged: the bins between them are empty on both sides, so
    after flooring they add ``0`` to the index, which is therefore the same as with merged edges.
    NaN values (last in a sorted row) are at or above no edge, and no value is at or above a
    NaN edge, so they fall in the first bin.
    """
    n = x.shape[1]
    # a NaN after each row's edges finds where the row's NaNs begin (sorted last, as it searches)
    cuts = np.column_stack([edges, np.full(x.shape[0], np.nan)])
    below = np.empty(cuts.shape, dtype=np.int64)
    for row, values in enumerate(x):
        # in a sorted row, the values below an edge are those before its left insertion point
        below[row] = np.searchsorted(values, cuts[row], side="left")
    at_or_above = np.where(np.isnan(edges), 0, below[:, -1:] - below[:, :-1])
    counts = -np.diff(np.column_stack([np.full(x.shape[0], n), at_or_above, np.zeros(x.shape[0])]))
    return np.asarray(counts / n, dtype=np.float64)


def psi_rows(
    reference: np.ndarray[Any, Any], sample: np.ndarray[Any, Any], bins: int = 10
) -> np.ndarray[Any, Any]:
    """:func:`psi` of each row of ``sample`` (B x n) against the same row of ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(sample, dtype=np.float64)
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if ref.ndim != 2 or new.ndim != 2 or ref.shape[0] != new.shape[0]:
        raise ValueError("reference and sample must be 2-D with the same number of rows")
    # quantiles and bin counts depend on a row's values only, not on their order: on sorted
    # rows np.quantile selects several times faster and each count is a binary search
    ref = np.sort(ref, axis=1)
    new = np.sort(new, axis=1)
    edges = np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1], axis=1).T
    qf = np.maximum(_bin_fractions(ref, edges), _FLOOR)
    pf = np.maximum(_bin_fractions(new, edges), _FLOOR)
    return np.asarray(np.sum((pf - qf) * np.log(pf / qf), axis=1), dtype=np.float64)


def psi_interval(
    reference: np.ndarray[Any, Any],
    sample: np.ndarray[Any, Any],
    *,
    bins: int = 10,
    alpha: float = 0.05,
    n_boot: int = 2000,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap ``1 - alpha`` interval of :func:`psi` (module docstring).

    Each replicate resamples both groups with replacement and recomputes PSI, bin edges
    included. NaN when either side is empty or ``n_boot`` is 0.
    """
    ref = np.asarray(reference, dtype=np.float64)
    new = np.asarray(sample, dtype=np.float64)
    if ref.size == 0 or new.size == 0 or n_boot == 0:
        return math.nan, math.nan
    boot_ref = ref[rng.integers(0, ref.size, (n_boot, ref.size))]
    boot_new = new[rng.integers(0, new.size, (n_boot, new.size))]
    lo, hi = np.quantile(psi_rows(boot_ref, boot_new, bins), [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _level(p_adjusted: float, psi_value: float, alpha: float) -> str:
    if not math.isfinite(p_adjusted):
        return "n/a"
    if p_adjusted > alpha:
        return "stable"
    return "minor" if psi_value < 0.1 else "moderate" if psi_value <= 0.25 else "major"


@dataclass(frozen=True)
class SiteDrift:
    """One site's AI scores against the reference site's, for one finding and stratum.

    ``level`` is ``reference`` for the reference site's own row (no test), ``n/a`` without
    scores on one side, ``stable`` unless ``ks_p_adjusted <= alpha``, and otherwise ``minor``,
    ``moderate`` or ``major`` by PSI (module docstring).
    """

    finding: str
    stratum: str
    site: str
    n: int
    mean: float
    median: float
    ks_statistic: float
    ks_p_value: float
    ks_p_adjusted: float
    psi: float
    psi_ci_lower: float
    psi_ci_upper: float
    level: str

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
            "ks_p_adjusted": _num(self.ks_p_adjusted),
            "psi": _num(self.psi),
            "psi_ci_lower": _num(self.psi_ci_lower),
            "psi_ci_upper": _num(self.psi_ci_upper),
            "level": self.level,
        }


@dataclass(frozen=True)
class DriftResult:
    """Per finding type and stratum, every site against the reference site."""

    reference: str
    bins: int
    alpha: float
    family: str
    n_boot: int
    seed: int
    rows: tuple[SiteDrift, ...]

    @property
    def method(self) -> str:
        scope = (
            "all comparisons of the report"
            if self.family == "report"
            else "the sites of each finding type and stratum"
        )
        return (
            f"Two-sample Kolmogorov-Smirnov test of each site against the reference site "
            f"(exact where available), Holm-adjusted over {scope}; a shift when the adjusted "
            f"p <= {self.alpha:g}, graded by PSI ({self.bins} bins at the reference quantiles; "
            f"< 0.1 minor, 0.1-0.25 moderate, > 0.25 major) with a {1 - self.alpha:.0%} "
            f"percentile bootstrap interval ({self.n_boot} resamples of both groups, "
            f"seed {self.seed})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "bins": self.bins,
            "alpha": self.alpha,
            "multiplicity": f"holm over {self.family.replace('_', ' x ')}",
            "n_boot": self.n_boot,
            "seed": self.seed,
            "method": self.method,
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
    f = long.loc[:, list(needed)]
    f["ai_probability"] = pd.to_numeric(f["ai_probability"], errors="coerce")
    f["truth"] = pd.to_numeric(f["truth"], errors="coerce")
    f = f[f["ai_probability"].notna()]
    for col in ("case", "finding", by):
        f[col] = text_ids(f[col])
    return f.drop_duplicates(subset=["finding", "case"]).reset_index(drop=True)


def _comparison_rng(seed: int, finding: str, stratum: str, site: str) -> np.random.Generator:
    # the stream depends on the seed and the comparison's names only, not on the other rows
    key = zlib.crc32("\x1f".join((finding, stratum, site)).encode())
    return np.random.default_rng([seed, key])


def score_drift(
    long: pd.DataFrame,
    *,
    by: str = "site",
    reference: str | None = None,
    bins: int = 10,
    alpha: float = 0.05,
    family: str = "report",
    n_boot: int = 2000,
    seed: int = 0,
) -> DriftResult:
    """Test each site's AI score distribution against the reference site's (module docstring).

    Parameters
    ----------
    long
        The long reads frame (DESIGN.md), or any frame with ``case, finding, truth,
        ai_probability`` and the ``by`` column.
    by
        The grouping column (``site``; ``manufacturer`` or ``modality`` work the same way).
    reference
        The reference group; ``None`` takes the one with the most cases with AI scores (the
        first by name among equals), whatever the order of the rows.
    bins
        PSI bins (reference quantiles).
    alpha
        The study's significance level: Holm-adjusted KS p-values at or below it are shifts;
        the PSI interval has level ``1 - alpha``.
    family
        ``report``: Holm over every comparison; ``finding_stratum``: within each finding type
        and stratum.
    n_boot
        Bootstrap resamples for the PSI interval (0: no interval).
    seed
        Seed of the bootstrap streams.

    Raises
    ------
    ValueError
        Missing columns, no AI probabilities at all, an unknown ``reference`` or ``family``,
        ``alpha`` outside (0, 1), a negative ``n_boot``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be 0 or more, got {n_boot}")
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    scores = case_scores(long, by=by)
    if scores.empty:
        raise ValueError("no AI probabilities to compare")
    # sorted, and the default reference chosen from the data alone, so that the same reads give
    # the same rows whatever order a file or the database lists them in
    counts = scores.groupby(scores[by].astype(str), observed=True)["case"].nunique()
    groups = sorted(str(g) for g in counts.index)
    ref = min(groups, key=lambda g: (-int(counts[g]), g)) if reference is None else reference
    if ref not in groups:
        raise ValueError(f"reference {by} {ref!r} has no AI scores; have {groups}")
    rows: list[dict[str, Any]] = []
    for finding in sorted(str(f) for f in pd.unique(scores["finding"])):
        sub = scores[scores["finding"] == finding]
        for stratum in STRATA:
            part = sub if stratum == "all" else sub[sub["truth"] == (stratum == "positive")]
            # sorted: the bootstrap draws by position, so the rows' order must not matter
            ref_scores = np.sort(part.loc[part[by] == ref, "ai_probability"].to_numpy(np.float64))
            for group in groups:
                vals = np.sort(part.loc[part[by] == group, "ai_probability"].to_numpy(np.float64))
                row: dict[str, Any] = {
                    "finding": finding,
                    "stratum": stratum,
                    "site": group,
                    "n": int(vals.size),
                    "mean": float(vals.mean()) if vals.size else math.nan,
                    "median": float(np.median(vals)) if vals.size else math.nan,
                    "ks_statistic": math.nan,
                    "ks_p_value": math.nan,
                    "ks_p_adjusted": math.nan,
                    "psi": math.nan,
                    "psi_ci_lower": math.nan,
                    "psi_ci_upper": math.nan,
                    "level": "reference" if group == ref else "n/a",
                }
                if group != ref and vals.size and ref_scores.size:
                    with warnings.catch_warnings():
                        # scipy falls back to the asymptotic p-value when its exact one fails
                        # (at the smallest D, where both are about 1): documented above
                        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation")
                        ks = stats.ks_2samp(vals, ref_scores, method="auto")
                    lo, hi = psi_interval(
                        ref_scores,
                        vals,
                        bins=bins,
                        alpha=alpha,
                        n_boot=n_boot,
                        rng=_comparison_rng(seed, finding, stratum, group),
                    )
                    row |= {
                        "ks_statistic": float(ks.statistic),
                        "ks_p_value": float(ks.pvalue),
                        "psi": psi(ref_scores, vals, bins),
                        "psi_ci_lower": lo,
                        "psi_ci_upper": hi,
                    }
                rows.append(row)
    _holm(rows, family=family, alpha=alpha)
    return DriftResult(
        reference=ref,
        bins=bins,
        alpha=alpha,
        family=family,
        n_boot=n_boot,
        seed=seed,
        rows=tuple(SiteDrift(**r) for r in rows),
    )


def _holm(rows: list[dict[str, Any]], *, family: str, alpha: float) -> None:
    """Fill ``ks_p_adjusted`` and ``level`` of the tested rows, Holm within each family."""
    families: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if math.isfinite(row["ks_p_value"]):
            key = () if family == "report" else (row["finding"], row["stratum"])
            families.setdefault(key, []).append(row)
    for members in families.values():
        adjusted = holm_adjust(np.array([r["ks_p_value"] for r in members]))
        for row, p_adj in zip(members, adjusted, strict=True):
            row["ks_p_adjusted"] = float(p_adj)
            row["level"] = _level(float(p_adj), row["psi"], alpha)


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
