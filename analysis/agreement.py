"""Agreement between raters: Cohen's kappa, Fleiss' kappa and percent agreement.

Estimands
---------
* Cohen's kappa (Cohen 1960; weighted: Cohen 1968) for two raters over the items both rated:
  ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o = sum_ij w_ij p_ij`` and
  ``p_e = sum_ij w_ij p_i. p_.j``, agreement weights ``w_ij`` (identity for unweighted kappa;
  ``1 - |i - j| / (k - 1)`` linear, Cicchetti-Allison; ``1 - (i - j)^2 / (k - 1)^2`` quadratic,
  Fleiss-Cohen). ``i`` and ``j`` are the positions of the categories in the ordered list of all
  categories seen in the data (numeric ratings ordered as numbers), so the weights do not change
  when a pair of raters happens not to use a category.
* Its large-sample (non-null) variance, Fleiss, Cohen & Everitt (1969), eq. (13)::

      var(kappa) = [sum_ij p_ij (w_ij - (wbar_i. + wbar_.j)(1 - kappa))^2
                    - (kappa - p_e (1 - kappa))^2] / (n (1 - p_e)^2)

  with ``wbar_i. = sum_j p_.j w_ij`` and ``wbar_.j = sum_i p_i. w_ij``; the 95% interval is the
  Wald interval ``kappa +/- z_{1-alpha/2} se``. This is the ASE that SAS PROC FREQ and
  ``statsmodels.stats.inter_rater.cohens_kappa`` report.
* Fleiss' kappa (Fleiss 1971) over the items rated by every rater, with the **jackknife standard
  error over items** (Quenouille-Tukey): ``kappa_(-i)`` is Fleiss' kappa without item ``i``
  (closed form from the item agreements and category totals, so all ``N`` of them cost one
  ``N x k`` array), ``se^2 = (N - 1) / N sum_i (kappa_(-i) - mean)^2`` and the interval is
  ``kappa +/- t_{N - 1, 1 - alpha / 2} se``. Kappa is a smooth function of item means, so the
  jackknife is consistent whatever the true kappa, deterministic (no seed) and cheap. In
  simulated studies (``benchmarks/validate_missed_kappa.md``) this interval covered the true
  kappa in 92-96% of studies with 30-100 items, where a Wald interval on the SE of Fleiss, Nee
  & Landis (1979), which holds only *under kappa = 0* (the SE of R ``irr::kappam.fleiss``),
  covered it in 72-94%. That null SE is kept for its purpose, the z test of kappa = 0:
  :func:`fleiss_kappa_null_test`.
* Every interval is clipped to [-1, 1], the range of kappa.
* Percent agreement: the percentage of items on which both raters gave the same category.

References
----------
Cohen J (1960). A coefficient of agreement for nominal scales. Educ Psychol Meas 20:37-46.
doi:10.1177/001316446002000104
Cohen J (1968). Weighted kappa. Psychol Bull 70(4):213-220. doi:10.1037/h0026256
Fleiss JL, Cohen J, Everitt BS (1969). Large sample standard errors of kappa and weighted kappa.
Psychol Bull 72(5):323-327. doi:10.1037/h0028106
Fleiss JL (1971). Measuring nominal scale agreement among many raters. Psychol Bull 76(5):378-382.
doi:10.1037/h0031619
Fleiss JL, Nee JCM, Landis JR (1979). Large sample variance of kappa in the case of different sets
of raters. Psychol Bull 86(5):974-977. doi:10.1037/0033-2909.86.5.974
Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap, ch. 11 (the jackknife).
Chapman & Hall. doi:10.1201/9780429246593
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from analysis._common import jsonable_float as _num
from analysis.longreads import text_ids

Weights = Literal["none", "linear", "quadratic"]
WEIGHTS: tuple[str, ...] = ("none", "linear", "quadratic")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class KappaEstimate:
    """A kappa coefficient with its standard error and Wald interval."""

    kappa: float
    se: float
    ci_lower: float
    ci_upper: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "kappa": _num(self.kappa),
            "se": _num(self.se),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
        }


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's kappa and percent agreement of two raters over the items both rated."""

    rater_a: str
    rater_b: str
    n: int
    percent_agreement: float
    estimate: KappaEstimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "rater_a": self.rater_a,
            "rater_b": self.rater_b,
            "n": self.n,
            "percent_agreement": _num(self.percent_agreement),
            **self.estimate.to_dict(),
        }


@dataclass(frozen=True)
class KappaResult:
    """All pairwise Cohen's kappas and Fleiss' kappa of a ``rater,item,rating`` frame."""

    n_items: int
    n_raters: int
    weights: str
    categories: tuple[str, ...]
    fleiss: KappaEstimate
    pairs: tuple[PairAgreement, ...]

    def to_text(self) -> str:
        """A readable table for the command line."""
        f = self.fleiss
        lines = [
            f"Agreement: {self.n_raters} raters, {self.n_items} items, weights {self.weights}, "
            f"categories {', '.join(self.categories)}",
            f"Fleiss' kappa (items rated by all): {_fmt(f.kappa)}  SE {_fmt(f.se)}  "
            f"95% CI ({_fmt(f.ci_lower)}, {_fmt(f.ci_upper)})",
            "",
            f"{'rater_a':>12} {'rater_b':>12} {'n':>6} {'agree%':>7} {'kappa':>8} {'SE':>8} "
            f"{'CI lower':>9} {'CI upper':>9}",
        ]
        for p in self.pairs:
            e = p.estimate
            lines.append(
                f"{p.rater_a:>12} {p.rater_b:>12} {p.n:>6} {_fmt(p.percent_agreement, 1):>7} "
                f"{_fmt(e.kappa):>8} {_fmt(e.se):>8} {_fmt(e.ci_lower):>9} {_fmt(e.ci_upper):>9}"
            )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The ``kappa --json`` object of DESIGN.md."""
        return {
            "n_items": self.n_items,
            "n_raters": self.n_raters,
            "weights": self.weights,
            "categories": list(self.categories),
            "fleiss": self.fleiss.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs],
        }


def _fmt(x: float, digits: int = 4) -> str:
    return "NA" if not math.isfinite(x) else f"{x:.{digits}f}"


def read_kappa_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``rater,item,rating`` CSV; IDs and ratings as written (strings).

    Raises
    ------
    ValueError
        The file is missing or not CSV, or a column is missing.
    """
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "empty file"
        raise ValueError(f"cannot parse {path} as CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("rater", "item", "rating") if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)} (need rater,item,rating)")
    if (frame["rating"].str.strip() == "").any():
        row = int(np.flatnonzero((frame["rating"].str.strip() == "").to_numpy())[0])
        raise ValueError(f"empty rating in data row {row + 1}")
    frame["rating"] = frame["rating"].str.strip()
    return frame


def _wald(kappa: float, se: float, alpha: float) -> KappaEstimate:
    """Wald interval ``kappa +/- z se``, clipped to [-1, 1] (the range of kappa)."""
    z = -float(special.ndtri(alpha / 2))
    return KappaEstimate(kappa, se, max(kappa - z * se, -1.0), min(kappa + z * se, 1.0))


def weight_matrix(k: int, weights: str) -> FloatArray:
    """Agreement weights ``w_ij`` (1 on the diagonal) for ``k`` ordered categories.

    Raises
    ------
    ValueError
        If ``weights`` is not one of ``none``, ``linear``, ``quadratic``.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    if weights == "none" or k < 2:
        return np.eye(k)
    d = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    return 1.0 - (d if weights == "linear" else d**2)


def cohen_kappa_table(
    table: npt.ArrayLike, *, weights: Weights = "none", alpha: float = 0.05
) -> KappaEstimate:
    """Cohen's (weighted) kappa of a ``k x k`` contingency table, SE of Fleiss et al. (1969).

    Parameters
    ----------
    table
        Counts, rows = rater A's category, columns = rater B's, categories in order.
    weights
        ``none`` (Cohen 1960), ``linear`` (Cicchetti-Allison) or ``quadratic`` (Fleiss-Cohen).
    alpha
        Two-sided level of the Wald interval.

    Returns
    -------
    KappaEstimate
        NaN kappa and SE when chance agreement is 1 (both raters used one and the same category).

    Notes
    -----
    Formula and references in the module docstring (Fleiss, Cohen & Everitt 1969,
    doi:10.1037/h0028106).
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"kappa table must be square, got shape {t.shape}")
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("kappa table must hold non-negative finite counts")
    n = t.sum()
    if n <= 0:
        raise ValueError("kappa table is empty")
    w = weight_matrix(t.shape[0], weights)
    p = t / n
    row, col = p.sum(1), p.sum(0)
    p_o = float((w * p).sum())
    p_e = float((w * np.outer(row, col)).sum())
    if p_e >= 1.0 - 1e-12:
        return KappaEstimate(math.nan, math.nan, math.nan, math.nan)
    kappa = (p_o - p_e) / (1.0 - p_e)
    w_row = w @ col  # wbar_i.
    w_col = row @ w  # wbar_.j
    dev = w - np.add.outer(w_row, w_col) * (1.0 - kappa)
    var = ((p * dev**2).sum() - (kappa - p_e * (1.0 - kappa)) ** 2) / (n * (1.0 - p_e) ** 2)
    return _wald(kappa, math.sqrt(max(float(var), 0.0)), alpha)


def _fleiss_table(counts: npt.ArrayLike) -> tuple[FloatArray, float]:
    """The validated ``items x categories`` table and the number of raters per item."""
    t = np.asarray(counts, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError("Fleiss' kappa needs a non-empty items x categories table")
    m_per = t.sum(1)
    m = float(m_per[0])
    if not np.all(m_per == m):
        raise ValueError("Fleiss' kappa needs every item rated by the same number of raters")
    if m < 2:
        raise ValueError("Fleiss' kappa needs at least two raters per item")
    return t, m


def _fleiss_value(
    agreement_sum: FloatArray | float, totals: FloatArray, n_items: FloatArray | float, m: float
) -> FloatArray:
    """Fleiss' kappa from the sum of item agreements ``P_i`` and the category totals.

    Broadcasts over leading dimensions (used for all leave-one-item-out tables at once).
    """
    p_bar = np.asarray(agreement_sum) / n_items
    p = totals / (np.asarray(n_items)[..., None] * m)
    p_e = (p**2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((p_bar - p_e) / (1.0 - p_e), dtype=np.float64)


def fleiss_kappa(counts: npt.ArrayLike, *, alpha: float = 0.05) -> KappaEstimate:
    """Fleiss' kappa of an ``items x categories`` count table, jackknife SE over items.

    Estimand: ``kappa = (P_bar - P_e) / (1 - P_e)``, the mean pairwise agreement among the ``m``
    raters of each item beyond that expected from the pooled category proportions ``p_j``
    (Fleiss 1971, doi:10.1037/h0031619). Value identical to
    ``statsmodels.stats.inter_rater.fleiss_kappa``.

    The standard error is the jackknife over items, ``se^2 = (N - 1) / N sum_i (kappa_(-i) -
    kappa_(.))^2`` (Efron & Tibshirani 1993, ch. 11), valid at any kappa; the interval is
    ``kappa +/- t_{N - 1, 1 - alpha / 2} se``, the jackknife's usual t reference on ``N - 1`` df
    (with 30 items a normal quantile covered 92-94% in simulation, the t one 92-95%), clipped to
    [-1, 1]. Why not the published SE of Fleiss, Nee
    & Landis (1979): module docstring; that SE and its test of kappa = 0 are
    :func:`fleiss_kappa_null_test`. With fewer than three items the SE is NaN.

    Raises
    ------
    ValueError
        If items have different numbers of ratings or fewer than two raters.
    """
    t, m = _fleiss_table(counts)
    n_items = t.shape[0]
    agreement = (t * (t - 1)).sum(1) / (m * (m - 1))  # P_i
    totals = t.sum(0)
    p = totals / (n_items * m)
    if float((p * (1.0 - p)).sum()) <= 1e-12:
        return KappaEstimate(math.nan, math.nan, math.nan, math.nan)
    kappa = float(_fleiss_value(float(agreement.sum()), totals, float(n_items), m))
    if n_items < 3:
        return KappaEstimate(kappa, math.nan, math.nan, math.nan)
    loo = _fleiss_value(agreement.sum() - agreement, totals[None, :] - t, float(n_items - 1), m)
    if not np.all(np.isfinite(loo)):  # an item whose removal leaves one category in use
        return KappaEstimate(kappa, math.nan, math.nan, math.nan)
    se = math.sqrt((n_items - 1) / n_items * float(np.sum((loo - loo.mean()) ** 2)))
    half = float(special.stdtrit(n_items - 1, 1.0 - alpha / 2.0)) * se
    return KappaEstimate(kappa, se, max(kappa - half, -1.0), min(kappa + half, 1.0))


def fleiss_kappa_null_test(counts: npt.ArrayLike) -> tuple[float, float, float]:
    """The z test of H0: kappa = 0 for Fleiss' kappa, with the SE of Fleiss, Nee & Landis (1979).

    ``se0 = sqrt(2 / (N m (m - 1))) sqrt((sum p_j q_j)^2 - sum p_j q_j (q_j - p_j)) / sum p_j q_j``
    (doi:10.1037/0033-2909.86.5.974) is the SE *under kappa = 0*, as in R ``irr::kappam.fleiss``;
    use it for this test only, not for an interval (:func:`fleiss_kappa` gives that).

    Returns
    -------
    tuple
        ``(se0, z, p_value)`` with ``z = kappa / se0`` and the two-sided normal p-value
        (the null-variance test); NaN when every rating is in one category.
    """
    t, m = _fleiss_table(counts)
    n_items = t.shape[0]
    p = t.sum(0) / (n_items * m)
    q = 1.0 - p
    pq = float((p * q).sum())
    if pq <= 1e-12:
        return math.nan, math.nan, math.nan
    agreement = float(((t * (t - 1)).sum(1) / (m * (m - 1))).sum())
    kappa = float(_fleiss_value(agreement, t.sum(0), float(n_items), m))
    inner = pq**2 - float((p * q * (q - p)).sum())
    se0 = math.sqrt(2.0 / (n_items * m * (m - 1))) * math.sqrt(max(inner, 0.0)) / pq
    z = kappa / se0 if se0 > 0 else math.nan
    return se0, z, float(2.0 * special.ndtr(-abs(z)))


def _ordered_categories(values: pd.Series) -> tuple[list[Any], tuple[str, ...]]:
    """Distinct ratings in order (numeric if every rating is a number), and their labels."""
    numeric = pd.to_numeric(values, errors="coerce")
    uniq: list[Any]
    if numeric.notna().all():
        uniq = sorted(pd.unique(numeric).tolist())
        labels = tuple(str(int(u)) if float(u).is_integer() else str(u) for u in uniq)
        return uniq, labels
    uniq = sorted(pd.unique(values.astype(str)).tolist())
    return uniq, tuple(uniq)


def _validate(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("rater", "item", "rating") if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    f = frame[["rater", "item", "rating"]]
    if f["rating"].isna().any():
        raise ValueError("empty rating in the input")
    if f.duplicated(["rater", "item"]).any():
        raise ValueError("a rater rated the same item more than once")
    f = f.assign(rater=text_ids(f["rater"]), item=text_ids(f["item"]))
    if f["rater"].nunique() < 2:
        raise ValueError("kappa needs at least two raters")
    return f


def kappa_analysis(
    frame: pd.DataFrame, *, weights: Weights = "none", alpha: float = 0.05
) -> KappaResult:
    """Pairwise Cohen's kappa and Fleiss' kappa of a ``rater,item,rating`` frame.

    Every pair of raters (in order of first appearance) is compared over the items both rated;
    Fleiss' kappa uses the items rated by every rater (always unweighted: Fleiss' kappa is a
    nominal-scale statistic). Methods and references: module docstring.

    Raises
    ------
    ValueError
        Missing columns, empty ratings, duplicate ``(rater, item)``, fewer than two raters,
        unknown weights.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    f = _validate(frame)
    uniq, labels = _ordered_categories(f["rating"])
    numeric = pd.to_numeric(f["rating"], errors="coerce")
    if weights != "none" and not numeric.notna().all():
        raise ValueError(f"{weights} weights need numeric (ordered) ratings")
    key = numeric if numeric.notna().all() else f["rating"].astype(str)
    code = pd.Index(uniq).get_indexer(key)
    k = len(uniq)
    raters = list(pd.unique(f["rater"]))
    items = list(pd.unique(f["item"]))
    wide = np.full((len(raters), len(items)), -1, dtype=np.int64)
    wide[pd.Index(raters).get_indexer(f["rater"]), pd.Index(items).get_indexer(f["item"])] = code

    pairs = []
    for a, b in combinations(range(len(raters)), 2):
        both = (wide[a] >= 0) & (wide[b] >= 0)
        n = int(both.sum())
        if n == 0:
            est = KappaEstimate(math.nan, math.nan, math.nan, math.nan)
            pct = math.nan
        else:
            cells = wide[a, both] * k + wide[b, both]
            table = np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.float64)
            est = cohen_kappa_table(table, weights=weights, alpha=alpha)
            pct = 100.0 * float(np.trace(table)) / n
        pairs.append(PairAgreement(raters[a], raters[b], n, pct, est))

    complete = (wide >= 0).all(0)
    if complete.any():
        sub = wide[:, complete]
        counts = np.zeros((sub.shape[1], k))
        np.add.at(counts, (np.broadcast_to(np.arange(sub.shape[1]), sub.shape), sub), 1.0)
        fl = fleiss_kappa(counts, alpha=alpha)
    else:
        fl = KappaEstimate(math.nan, math.nan, math.nan, math.nan)
    return KappaResult(
        n_items=len(items),
        n_raters=len(raters),
        weights=weights,
        categories=labels,
        fleiss=fl,
        pairs=tuple(pairs),
    )


def cohen_kappa(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    weights: Weights = "none",
    alpha: float = 0.05,
) -> tuple[float, KappaEstimate]:
    """Percent agreement and Cohen's kappa of two aligned rating vectors (no missing values).

    Categories are the sorted union of both vectors. Methods: module docstring.
    """
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("cohen_kappa needs two 1-D rating vectors of the same length")
    if x.size == 0:
        raise ValueError("cohen_kappa needs at least one item")
    cats, inv = np.unique(np.concatenate([x, y]), return_inverse=True)
    table = np.zeros((cats.size, cats.size))
    np.add.at(table, (inv[: x.size], inv[x.size :]), 1.0)
    pct = 100.0 * float(np.trace(table)) / x.size
    return pct, cohen_kappa_table(table, weights=weights, alpha=alpha)


@dataclass(frozen=True)
class AgreementRow:
    """One kappa of the long-frame agreement table."""

    arm: str
    finding: str
    comparison: str  # "reader-reader", "reader-truth", "reader-ai", "fleiss"
    rater_a: str
    rater_b: str
    n: int
    percent_agreement: float
    estimate: KappaEstimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "finding": self.finding,
            "comparison": self.comparison,
            "rater_a": self.rater_a,
            "rater_b": self.rater_b,
            "n": self.n,
            "percent_agreement": _num(self.percent_agreement),
            **self.estimate.to_dict(),
        }


def long_frame_agreement(
    long: pd.DataFrame,
    *,
    ai_threshold: float | dict[str, float] = 0.5,
    alpha: float = 0.05,
) -> tuple[AgreementRow, ...]:
    """Agreement of the binary calls of the long reads frame, per arm and finding type.

    For each arm and finding: Cohen's kappa of every reader pair (over the cases both read),
    Fleiss' kappa of all readers (cases read by all), and each reader against the truth and
    against the AI's call (``ai_probability >= threshold``; a per-finding dict of thresholds is
    allowed, since the long frame does not carry the model's operating point). Unweighted kappa,
    SE of Fleiss, Cohen & Everitt (1969) for a pair, jackknife SE over cases for Fleiss' kappa,
    intervals clipped to [-1, 1]; see the module docstring.
    """
    need = ["reader", "case", "arm", "finding", "truth", "call", "ai_probability"]
    missing = [c for c in need if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    rows: list[AgreementRow] = []
    for (arm, finding), g in long.groupby(["arm", "finding"], sort=False):
        arm_s, fin_s = str(arm), str(finding)
        thr = ai_threshold.get(fin_s, 0.5) if isinstance(ai_threshold, dict) else ai_threshold
        frame = pd.DataFrame({"rater": g["reader"], "item": g["case"], "rating": g["call"]})
        if frame["rater"].nunique() >= 2:
            res = kappa_analysis(frame, alpha=alpha)
            rows.extend(
                AgreementRow(
                    arm_s,
                    fin_s,
                    "reader-reader",
                    p.rater_a,
                    p.rater_b,
                    p.n,
                    p.percent_agreement,
                    p.estimate,
                )
                for p in res.pairs
            )
            rows.append(
                AgreementRow(
                    arm_s, fin_s, "fleiss", "all readers", "", res.n_items, math.nan, res.fleiss
                )
            )
        for reader, r in g.groupby("reader", sort=False):
            call = r["call"].to_numpy(dtype=np.int64)
            ai = r["ai_probability"].to_numpy(dtype=np.float64)
            for name, other in (
                ("reader-truth", r["truth"].to_numpy(dtype=np.int64)),
                ("reader-ai", (ai >= thr).astype(np.int64)),
            ):
                ok = ~np.isnan(ai) if name == "reader-ai" else np.ones(call.size, bool)
                if not ok.any():
                    continue
                pct, est = cohen_kappa(call[ok], other[ok], alpha=alpha)
                rows.append(
                    AgreementRow(
                        arm_s, fin_s, name, str(reader), name.split("-")[1], int(ok.sum()), pct, est
                    )
                )
    return tuple(rows)
