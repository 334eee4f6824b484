"""Category counts and the starting values of the PROPROC fit, as MRMCaov 0.3.0 chooses them.

MRMCaov (``binormal_inits``) fits a line to the empirical ROC points on probit axes (the
observed points plus two points on each segment between them), reads the binormal ``a`` and
``b`` off it, and converts them: ``d_a = max(a sqrt(2 / (1 + b^2)), 0)``, ``c = (b - 1)/(b + 1)``.
It does so three times (as observed; with the rates halved and no intercept; with the rates
moved halfway to 1 and no intercept) and, when the three fits disagree, five more starts on an
arc between them (``binormalLR_params``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from analysis.proproc._model import Counts, FloatArray, rate, solve_decreasing


def category_counts(negatives: FloatArray, positives: FloatArray) -> Counts:
    """MRMCaov's ``roc_counts(collapse = TRUE)``: counts per distinct rating, lowest first.

    A category is merged into the next one when the cumulative count of either truth group is
    the same before, at and after it (MRMCaov drops such rows of the cumulative table).
    """
    levels = np.unique(np.concatenate((negatives, positives)))
    neg = np.bincount(np.searchsorted(levels, negatives), minlength=levels.size).astype(float)
    pos = np.bincount(np.searchsorted(levels, positives), minlength=levels.size).astype(float)
    cum_neg, cum_pos = np.cumsum(neg), np.cumsum(pos)

    def flat(cum: FloatArray) -> NDArray[np.bool_]:
        same_before = np.concatenate(([False], cum[1:] == cum[:-1]))
        same_after = np.concatenate((cum[:-1] == cum[1:], [False]))
        return np.asarray(same_before & same_after)

    keep = ~(flat(cum_neg) | flat(cum_pos))
    cum_neg, cum_pos = cum_neg[keep], cum_pos[keep]
    return Counts(
        negatives=np.diff(cum_neg, prepend=0.0),
        positives=np.diff(cum_pos, prepend=0.0),
        levels=levels[keep],
    )


def empirical_points(negatives: FloatArray, positives: FloatArray) -> tuple[FloatArray, FloatArray]:
    """FPF and TPF at each distinct rating as threshold (rating >= level), then (0, 0)."""
    levels = np.unique(np.concatenate((negatives, positives)))

    def above(x: FloatArray) -> FloatArray:
        at_least = x.size - np.searchsorted(np.sort(x), levels, side="left")
        return np.concatenate((at_least / x.size, [0.0]))

    return above(negatives), above(positives)


def degenerate_auc(fpf: FloatArray, tpf: FloatArray) -> float | None:
    """MRMCaov's "lack of interior points" rule: the AUC it reports without fitting, or None.

    One rating for every case gives 0.5; every threshold with no false positives or all true
    positives (perfect separation) gives 1; the reverse gives 0.5 (``d_a`` cannot be negative).
    """
    if fpf.size <= 2:
        return 0.5
    if np.all((fpf == 0.0) | (tpf == 1.0)):
        return 1.0
    if np.all((fpf == 1.0) | (tpf == 0.0)):
        return 0.5
    return None


def _binormal_line(
    fpf: FloatArray, tpf: FloatArray, *, intercept: bool, shift: float, scale: float
) -> tuple[float, float]:
    """MRMCaov's least-squares line through the probit-scale ROC points: ``(a, b)``."""
    fpf, tpf = (fpf + shift) / scale, (tpf + shift) / scale
    order = np.lexsort((tpf, fpf))
    sx, sy = fpf[order], tpf[order]
    # Two points on each segment, at 1/3 and 2/3 of the way; MRMCaov moves them by the same
    # shift and scale a second time, and so do we.
    props = np.array([2.0, 1.0]) / 3.0
    ix = (sx[1:, None] - np.diff(sx)[:, None] * props).ravel()
    iy = (sy[1:, None] - np.diff(sy)[:, None] * props).ravel()
    inner = np.unique(np.column_stack((ix, iy)), axis=0)
    inner = (inner + shift) / scale
    with np.errstate(divide="ignore"):
        x = ndtri(np.concatenate((fpf, inner[:, 0])))
        y = ndtri(np.concatenate((tpf, inner[:, 1])))
    keep = np.isfinite(x) & np.isfinite(y)
    xk, yk = x[keep], y[keep]
    if xk.size == 0 or np.ptp(xk) == 0.0:
        b = 1e4
        hits = np.flatnonzero(y == np.inf)
        return (-float(x[hits[0]]) * b if hits.size else 0.0), b
    if intercept:
        b, a = np.polyfit(xk, yk, 1)
        return float(a), float(b)
    return 0.0, float(xk @ yk / (xk @ xk))


def _convert(a: float, b: float) -> tuple[float, float]:
    d_a = max(a * math.sqrt(2.0 / (1.0 + b * b)), 0.0)
    c = (b - 1.0) / (b + 1.0)
    # A falling line gives |c| > 1, outside the model; start just inside it instead.
    return d_a, float(np.clip(c, -0.99, 0.99))


def primary_starts(fpf: FloatArray, tpf: FloatArray) -> list[tuple[float, float]]:
    """The three ``(d_a, c)`` starts of MRMCaov's ``binormalLR_params``."""
    return [
        _convert(*_binormal_line(fpf, tpf, intercept=True, shift=0.0, scale=1.0)),
        _convert(*_binormal_line(fpf, tpf, intercept=False, shift=0.0, scale=2.0)),
        _convert(*_binormal_line(fpf, tpf, intercept=False, shift=1.0, scale=2.0)),
    ]


def arc_starts(
    fits: list[tuple[float, float]], full_auc: Callable[[float, float], float]
) -> list[tuple[float, float]]:
    """MRMCaov's five extra starts when the first fits differ by more than 0.1 in d_a or c."""
    d_lo, d_hi = min(f[0] for f in fits), max(f[0] for f in fits)
    c_lo, c_hi = min(f[1] for f in fits), max(f[1] for f in fits)
    if d_hi - d_lo <= 0.1 and c_hi - c_lo <= 0.1:
        return []
    if c_lo * c_hi < 0 and d_lo < 0.5 * abs(c_lo) and d_hi < 0.5 * abs(c_hi):
        z = float(ndtri((full_auc(d_lo, c_lo) + full_auc(d_hi, c_hi)) / 2.0))
        d1, d2, c1, c2, phase = d_lo, math.sqrt(2.0) * z - d_lo, c_hi, 0.0, 2
    elif d_hi > d_lo:
        d1, d2, c1, c2, phase = d_lo, d_hi - d_lo, c_hi, c_lo - c_hi, 1
    else:
        d1, d2, c1, c2, phase = d_hi, d_lo - d_hi, c_lo, c_hi - c_lo, 1
    theta = np.arange(1, 6) * math.pi / 12.0
    d_a = d1 + d2 * np.cos(phase * theta - (phase - 1) * math.pi / 2.0)
    c = c1 + c2 * np.sin(theta)
    return [(float(d), float(np.clip(cc, -0.99, 0.99))) for d, cc in zip(d_a, c, strict=True)]


def start_cutoffs(d_a: float, c: float, counts: Counts) -> FloatArray:
    """Cutoffs where the fitted mixture of both groups matches the observed category shares.

    Cutoff ``j`` solves ``(N0 FPF(v) + N1 TPF(v)) / N = share of cases rated above category j``
    by bisection on the model's support, so the start is inside the parameter space.
    """
    n0, n1 = counts.negatives.sum(), counts.positives.sum()
    above = 1.0 - np.cumsum(counts.negatives + counts.positives)[:-1] / (n0 + n1)

    def mixture(v: FloatArray) -> FloatArray:
        return np.asarray((n0 * rate(v, d_a, c, -1.0) + n1 * rate(v, d_a, c, 1.0)) / (n0 + n1))

    return solve_decreasing(mixture, above, d_a, c)
