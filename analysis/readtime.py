"""Reading time per arm: a linear mixed model on log duration with crossed reader and case effects.

Estimand: the ratio of geometric-mean reading times, assisted / unassisted, for a typical reader
and case. Model, fitted by REML (in lme4's notation, with ``arm`` coded 0 unassisted,
1 assisted)::

    log(duration_s) ~ arm + session + (1 | case) + (1 + arm || reader)

    log(t_ijk) = x_ijk' b + c_k + u_j + a_j [arm = assisted] + e_ijk,
    c_k ~ N(0, s_c^2)   case k,
    u_j ~ N(0, s_u^2)   reader j,
    a_j ~ N(0, s_a^2)   reader j's own change of log time with the AI,
    e_ijk ~ N(0, s_e^2),

all independent. ``session`` enters as a categorical factor (first session the reference) when
the reads come from more than one session; in a crossover it absorbs a learning or washout
effect. The reader intercept and slope are independent (lme4's ``||``): with two arms and 0/1
coding this gives readers a variance s_u^2 unassisted and s_u^2 + s_a^2 assisted, which is the
heterogeneity that matters for the arm effect, with one parameter fewer than a correlated pair
that a few readers can hardly estimate.

The ratio is ``exp(b_arm)`` with the interval ``exp(b_arm +/- t_{df, 1 - alpha/2} se)`` and a
t-test p-value, ``df`` from Satterthwaite's approximation computed as lmerTest does
(Kuznetsova et al. 2017): the variance of ``b_arm`` and its gradient in the parameters
``(s_c/s_e, s_u/s_e, s_a/s_e, s_e)``, the asymptotic covariance of those from the Hessian of the
REML deviance.

Computation: :mod:`analysis.crossed_reml` (the case effects absorbed, cost independent of the
number of reads).

One read is one reader x case x arm (x session): the long frame repeats the read's duration on
each finding type's row, so rows are collapsed to reads first. Reads with a missing or
non-positive duration are dropped and counted. When every case has a single read the case
effect is not identifiable apart from the residual and is left out (the model text says so).

References
----------
Laird NM, Ware JH (1982). Random-effects models for longitudinal data. Biometrics 38(4):963-974.
doi:10.2307/2529876
Satterthwaite FE (1946). An approximate distribution of estimates of variance components.
Biometrics Bulletin 2(6):110-114. doi:10.2307/3002019
Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using lme4.
Journal of Statistical Software 67(1). doi:10.18637/jss.v067.i01
Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. Journal of Statistical Software 82(13). doi:10.18637/jss.v082.i13
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from analysis._common import jsonable_float as _num
from analysis.crossed_reml import CrossedReml, satterthwaite_df

ARMS: tuple[str, str] = ("unassisted", "assisted")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ArmTime:
    """Descriptive reading times of one arm, in seconds."""

    arm: str
    n_reads: int
    median: float
    q1: float
    q3: float
    geometric_mean: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "n_reads": self.n_reads,
            "median": _num(self.median),
            "q1": _num(self.q1),
            "q3": _num(self.q3),
            "geometric_mean": _num(self.geometric_mean),
        }


@dataclass(frozen=True)
class VarianceComponents:
    """REML variances on the log-time scale; ``case`` is None when the term is left out."""

    case: float | None
    reader: float
    reader_arm: float
    residual: float

    def to_dict(self) -> dict[str, float | None]:
        return {
            "case": None if self.case is None else _num(self.case),
            "reader": _num(self.reader),
            "reader_arm": _num(self.reader_arm),
            "residual": _num(self.residual),
        }


@dataclass(frozen=True)
class ReadingTimeResult:
    """Reading time per arm and the mixed-model ratio assisted / unassisted."""

    arms: tuple[ArmTime, ...]
    ratio: float
    ci_lower: float
    ci_upper: float
    p_value: float
    reader_sd: float
    residual_sd: float
    n_readers: int
    n_dropped: int
    model_error: str | None
    model: str = ""
    se_log_ratio: float = math.nan
    df: float = math.nan
    variance_components: VarianceComponents | None = None
    n_cases: int = 0
    n_reads: int = 0

    def to_dict(self) -> dict[str, Any]:
        vc = self.variance_components
        return {
            "arms": [a.to_dict() for a in self.arms],
            "ratio": _num(self.ratio),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "p_value": _num(self.p_value),
            "se_log_ratio": _num(self.se_log_ratio),
            "df": _num(self.df),
            "reader_sd": _num(self.reader_sd),
            "residual_sd": _num(self.residual_sd),
            "variance_components": None if vc is None else vc.to_dict(),
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_reads": self.n_reads,
            "n_dropped": self.n_dropped,
            "model": self.model,
            "model_error": self.model_error,
        }


def reads_with_duration(long: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per read (reader, case, arm, session) with a positive ``duration_s``.

    The key columns come back as categoricals of their values written as text; the second
    value is the number of reads dropped for a missing or non-positive duration.
    """
    needed = ["reader", "case", "arm", "duration_s"]
    missing = [c for c in needed if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    keys = ["reader", "case", "arm"] + (["session"] if "session" in long.columns else [])
    # one integer key per read from the factorised key columns: grouping strings is the slow part
    key = np.zeros(len(long), dtype=np.int64)
    levels: list[pd.Index] = []
    for k in keys:
        codes, uniques = pd.factorize(long[k], use_na_sentinel=False)
        labels = pd.Index(uniques).astype(str)
        if not labels.is_unique:  # e.g. 1 and "1": the same read once written as text
            codes, uniques = pd.factorize(long[k].astype(str), use_na_sentinel=False)
            labels = pd.Index(uniques)
        key = key * len(labels) + codes
        levels.append(labels)
    duration = pd.to_numeric(long["duration_s"], errors="coerce")
    # the first valid duration of each read (the rows of its finding types repeat it)
    first = pd.Series(duration.to_numpy(dtype=np.float64)).groupby(key, sort=False).first()
    rest = first.index.to_numpy(dtype=np.int64)
    columns: dict[str, Any] = {}
    for k, labels in zip(keys[::-1], levels[::-1], strict=True):
        rest, code = np.divmod(rest, len(labels))
        columns[k] = pd.Categorical.from_codes(code, categories=labels)
    reads = pd.DataFrame({k: columns[k] for k in keys}).assign(duration_s=first.to_numpy())
    ok = np.isfinite(reads["duration_s"]) & (reads["duration_s"] > 0)
    return reads[ok & reads["arm"].isin(ARMS)].reset_index(drop=True), int((~ok).sum())


def _session_dummies(session: pd.Series) -> tuple[FloatArray, list[str]]:
    levels = list(pd.unique(session))
    try:
        levels.sort(key=float)
    except ValueError:
        levels.sort()
    cols = [(session == lev).to_numpy(dtype=np.float64) for lev in levels[1:]]
    return (np.column_stack(cols) if cols else np.empty((len(session), 0))), levels


def reading_time(long: pd.DataFrame, *, alpha: float = 0.05) -> ReadingTimeResult:
    """Reading time per arm and the assisted / unassisted ratio from a crossed mixed model.

    Parameters
    ----------
    long
        The long reads frame (needs ``reader, case, arm, duration_s``; ``session`` if present).
    alpha
        Two-sided level of the interval of the ratio.

    Returns
    -------
    ReadingTimeResult
        Per-arm median, quartiles and geometric mean; ``exp(b_arm)`` with its Satterthwaite t
        interval and p-value, the REML variance components on the log scale and the model text.
        If the model cannot be fitted (one reader, no variation, arm confounded with session)
        the ratio is NaN and ``model_error`` says why. Model and computation: module docstring.

    Raises
    ------
    ValueError
        Missing columns or no read with a positive duration in one of the arms.
    """
    reads, dropped = reads_with_duration(long)
    arms = []
    for arm in ARMS:
        d = reads.loc[reads["arm"] == arm, "duration_s"].to_numpy(dtype=np.float64)
        if d.size == 0:
            raise ValueError(f"no read with a positive duration_s in arm {arm!r}")
        q1, med, q3 = np.quantile(d, [0.25, 0.5, 0.75])
        arms.append(ArmTime(arm, int(d.size), med, q1, q3, float(np.exp(np.log(d).mean()))))
    y = np.log(reads["duration_s"].to_numpy(dtype=np.float64))
    assisted: FloatArray = np.asarray(reads["arm"] == ARMS[1], dtype=np.float64)
    reader, reader_ids = pd.factorize(reads["reader"])
    case, case_ids = pd.factorize(reads["case"])
    n_readers, n_cases, n = len(reader_ids), len(case_ids), len(y)
    terms = ["arm"]
    sessions = np.empty((n, 0))
    if "session" in reads.columns and reads["session"].nunique() > 1:
        sessions, _ = _session_dummies(reads["session"])
        terms.append("session")
    with_case = bool(np.bincount(case).max() > 1)
    random = (["(1 | case)"] if with_case else []) + ["(1 + arm || reader)"]
    model_text = f"log(duration_s) ~ {' + '.join(terms + random)}, REML, Satterthwaite df"
    x: FloatArray = np.column_stack([np.ones(n), assisted, sessions]).astype(np.float64)

    def failed(reason: str) -> ReadingTimeResult:
        nan = math.nan
        return ReadingTimeResult(
            tuple(arms), nan, nan, nan, nan, nan, nan, n_readers, dropped, reason,
            model=model_text, n_cases=n_cases, n_reads=n,
        )  # fmt: skip

    if n_readers < 2:
        return failed("reader variance needs reads from at least 2 readers")
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return failed("arm is confounded with session")
    if n <= x.shape[1] + 1:
        return failed("too few reads for the model")
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    if float(resid @ resid) <= 1e-12 * max(1.0, float(y @ y)):
        return failed("no variation in log reading time beyond arm and session")
    model = CrossedReml(y, x, case, reader, assisted, with_case=with_case)
    lam = model.fit()
    _, rss, _ = model.pieces(lam)
    sigma2 = rss / (n - x.shape[1])
    beta, inv = model.fixed(lam)
    b1 = float(beta[1])
    se = math.sqrt(sigma2 * float(inv[1, 1]))
    if not math.isfinite(se) or se <= 0:
        return failed("the standard error of the arm effect is not finite")
    df = satterthwaite_df(model, lam, math.sqrt(sigma2), 1)
    if not math.isfinite(df) or df <= 0:
        return failed("the Satterthwaite degrees of freedom are not defined")
    tq = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    vc = VarianceComponents(
        case=float(lam[0] ** 2 * sigma2) if with_case else None,
        reader=float(lam[1] ** 2 * sigma2),
        reader_arm=float(lam[2] ** 2 * sigma2),
        residual=sigma2,
    )
    return ReadingTimeResult(
        arms=tuple(arms),
        ratio=math.exp(b1),
        ci_lower=math.exp(b1 - tq * se),
        ci_upper=math.exp(b1 + tq * se),
        p_value=float(2.0 * stats.t.sf(abs(b1) / se, df)),
        reader_sd=math.sqrt(vc.reader),
        residual_sd=math.sqrt(sigma2),
        n_readers=n_readers,
        n_dropped=dropped,
        model_error=None,
        model=model_text,
        se_log_ratio=se,
        df=df,
        variance_components=vc,
        n_cases=n_cases,
        n_reads=n,
    )
