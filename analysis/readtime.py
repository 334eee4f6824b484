"""Reading time per arm: a linear mixed model on log duration with a reader random effect.

Estimand: the ratio of geometric-mean reading times, assisted / unassisted, within a reader.
Model (fitted by REML with ``statsmodels.regression.mixed_linear_model.MixedLM``)::

    log(duration_ijk) = b0 + b1 [arm_ijk = assisted] + u_j + e_ijk,
    u_j ~ N(0, s_u^2)  (reader j),  e_ijk ~ N(0, s_e^2)

The ratio is ``exp(b1)`` with the Wald interval ``exp(b1 +/- z se(b1))``. One read is one
reader x case x arm (x session): the long frame repeats the read's duration on each finding
type's row, so rows are collapsed to reads first. Cases are crossed with readers; their
correlation is not modelled here (a crossed case effect would need a different fitter), which
the docstring of :func:`reading_time` repeats. Reads with a missing or non-positive duration are
dropped and counted.

References
----------
Laird NM, Ware JH (1982). Random-effects models for longitudinal data. Biometrics 38(4):963-974.
doi:10.2307/2529876
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from analysis._common import jsonable_float as _num

ARMS: tuple[str, str] = ("unassisted", "assisted")


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": [a.to_dict() for a in self.arms],
            "ratio": _num(self.ratio),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "p_value": _num(self.p_value),
            "reader_sd": _num(self.reader_sd),
            "residual_sd": _num(self.residual_sd),
            "n_readers": self.n_readers,
            "n_dropped": self.n_dropped,
            "model": "log(duration) ~ arm + (1 | reader), REML",
            "model_error": self.model_error,
        }


def reads_with_duration(long: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per read (reader, case, arm, session) with a positive ``duration_s``."""
    needed = ["reader", "case", "arm", "duration_s"]
    missing = [c for c in needed if c not in long.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    keys = ["reader", "case", "arm"] + (["session"] if "session" in long.columns else [])
    rows = (
        long[keys].astype(str).assign(duration_s=pd.to_numeric(long["duration_s"], errors="coerce"))
    )
    # the first valid duration of each read (the rows of its finding types repeat it)
    reads = rows.groupby(keys, sort=False, as_index=False)["duration_s"].first()
    ok = np.isfinite(reads["duration_s"]) & (reads["duration_s"] > 0)
    return reads[ok & reads["arm"].isin(ARMS)], int((~ok).sum())


def reading_time(long: pd.DataFrame, *, alpha: float = 0.05) -> ReadingTimeResult:
    """Reading time per arm and the assisted / unassisted ratio from a mixed model.

    Parameters
    ----------
    long
        The long reads frame (needs ``reader, case, arm, duration_s``; ``session`` if present).
    alpha
        Two-sided level of the interval of the ratio.

    Returns
    -------
    ReadingTimeResult
        Per-arm median, quartiles and geometric mean; ``exp(b1)`` with its Wald interval and
        p-value, the reader and residual SDs on the log scale. If the model cannot be fitted
        the ratio is NaN and ``model_error`` says why. Model and caveats: module docstring.

    Raises
    ------
    ValueError
        Missing columns or no read with a positive duration in one of the arms.
    """
    import statsmodels.formula.api as smf

    reads, dropped = reads_with_duration(long)
    arms = []
    for arm in ARMS:
        d = reads.loc[reads["arm"] == arm, "duration_s"].to_numpy(dtype=np.float64)
        if d.size == 0:
            raise ValueError(f"no read with a positive duration_s in arm {arm!r}")
        q1, med, q3 = np.quantile(d, [0.25, 0.5, 0.75])
        arms.append(ArmTime(arm, int(d.size), med, q1, q3, float(np.exp(np.log(d).mean()))))
    frame = pd.DataFrame(
        {
            "log_t": np.log(reads["duration_s"].to_numpy(dtype=np.float64)),
            "assisted": (reads["arm"] == ARMS[1]).to_numpy(dtype=np.float64),
            "reader": reads["reader"].to_numpy(),
        }
    )
    n_readers = int(frame["reader"].nunique())
    nan = math.nan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm("log_t ~ assisted", frame, groups=frame["reader"]).fit(reml=True)
        b1 = float(fit.params["assisted"])
        se = float(fit.bse["assisted"])
        if not math.isfinite(se) or se <= 0:
            raise ValueError("the standard error of the arm effect is not finite")
    except (ValueError, np.linalg.LinAlgError) as error:
        return ReadingTimeResult(
            tuple(arms), nan, nan, nan, nan, nan, nan, n_readers, dropped, str(error)
        )
    z = -float(special.ndtri(alpha / 2))
    p = 2.0 * float(special.ndtr(-(abs(b1) / se)))
    reader_var = float(np.asarray(fit.cov_re)[0, 0])
    return ReadingTimeResult(
        arms=tuple(arms),
        ratio=math.exp(b1),
        ci_lower=math.exp(b1 - z * se),
        ci_upper=math.exp(b1 + z * se),
        p_value=p,
        reader_sd=math.sqrt(max(reader_var, 0.0)),
        residual_sd=math.sqrt(float(fit.scale)),
        n_readers=n_readers,
        n_dropped=dropped,
        model_error=None,
    )
