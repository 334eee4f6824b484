"""Areas under the fitted binormal likelihood-ratio curve, and points on it.

The full area is Pan and Metz's closed form; the partial areas are MRMCaov 0.3.0's eight-term
sum of bivariate normal probabilities between the cutoffs that bound the range
(``auc.binormalLR_curve``). At ``c = 0`` the curve is binormal with ``b = 1`` and the binormal
formulas apply, as in MRMCaov (``has_binormal_equiv``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri, owens_t

from analysis.partial import PartialArea
from analysis.proproc._model import FloatArray, is_zero, rate, solve_rate


def bvn_cdf(h: FloatArray, k: FloatArray, rho: float) -> FloatArray:
    """``P(X <= h, Y <= k)`` for standard bivariate normal ``(X, Y)`` with correlation ``rho``.

    Owen's (1956) identity ``Phi2(h, k) = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - beta``
    with ``a_h = (k - rho h) / (h sqrt(1 - rho^2))``, ``a_k`` likewise and ``beta = 1/2`` when
    ``h k < 0`` (or one is 0 and ``h + k < 0``); ``T`` is Owen's T function. ``|rho| < 1``;
    infinite limits allowed.
    """
    h, k = np.broadcast_arrays(np.asarray(h, dtype=np.float64), np.asarray(k, dtype=np.float64))
    out = np.empty(h.shape)
    root = math.sqrt(1.0 - rho * rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        th = np.where(h != 0.0, owens_t(h, (k - rho * h) / (h * root)), np.sign(k) / 4.0)
        tk = np.where(k != 0.0, owens_t(k, (h - rho * k) / (k * root)), np.sign(h) / 4.0)
        beta = np.where((h * k < 0) | ((h * k == 0) & (h + k < 0)), 0.5, 0.0)
        out[...] = (ndtr(h) + ndtr(k)) / 2.0 - th - tk - beta
    both_zero = (h == 0.0) & (k == 0.0)
    out[both_zero] = 0.25 + math.asin(rho) / (2.0 * math.pi)
    # Infinite limits: the finite formula above is undefined there.
    out = np.where(np.isposinf(h), ndtr(k), out)
    out = np.where(np.isposinf(k), ndtr(h), out)
    out = np.where(np.isneginf(h) | np.isneginf(k), 0.0, out)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def binormal_equivalent(d_a: float, c: float) -> tuple[float, float]:
    """The conventional binormal ``(a, b)`` of the same curve: ``a = d_a s / (1 - c)``, ..."""
    s = math.sqrt(1.0 + c * c)
    return d_a * s / (1.0 - c), (1.0 + c) / (1.0 - c)


def full_auc(d_a: float, c: float) -> float:
    """``Phi(d_a / sqrt 2) + 2 Phi2(-d_a / sqrt 2, 0; -(1 - c^2) / (1 + c^2))`` (Pan, Metz 1997)."""
    if is_zero(c):
        a, b = binormal_equivalent(d_a, c)
        return float(ndtr(a / math.sqrt(1.0 + b * b)))
    z = d_a / math.sqrt(2.0)
    rho = -(1.0 - c * c) / (1.0 + c * c)
    return float(ndtr(z) + 2.0 * bvn_cdf(np.array(-z), np.array(0.0), rho))


def _binormal_partial(a: float, b: float, lo: float, hi: float) -> float:
    x = ndtri(1.0 - np.array([hi, lo]))
    rho = -b / math.sqrt(1.0 + b * b)
    y = -rho * a / b
    cdf = bvn_cdf(x, np.full(2, y), rho)
    return float(cdf[1] - cdf[0])


def partial_auc(d_a: float, c: float, partial: PartialArea) -> float:
    """MRMCaov's partial area over specificity or sensitivity ``[min, max]``.

    Over specificity: ``integral of TPF dFPF`` for ``FPF`` in ``[1 - max, 1 - min]``; over
    sensitivity: the same with the axes swapped, which is the curve with ``c`` negated.
    Between the cutoffs ``v_1 < v_2`` bounding the range, with ``x = z1_FPF(v)``,
    ``x' = z2_FPF(v)``, ``y_1 = d_a / sqrt 2``, ``y_2 = y_1 (1 + c^2) / (2 c)`` and
    ``rho = -(1 + c) / sqrt(2 (1 + c^2))``, the area is
    ``[Phi2(x, y_1) + Phi2(x, y_2) + Phi2(x', -y_2) + Phi2(x', -y_1)]`` taken from ``v_2`` to
    ``v_1``, less ``max - min`` when ``c > 0``.
    """
    lo, hi = partial.min, partial.max
    width = partial.width if partial.normalize else 1.0
    if is_zero(c):
        a, b = binormal_equivalent(d_a, c)
        if partial.kind == "sensitivity":
            a, b = a / b, 1.0 / b
        return min(max(_binormal_partial(a, b, lo, hi) / width, 0.0), 1.0)
    if partial.kind == "sensitivity":
        c = -c
    s = math.sqrt(1.0 + c * c)
    y1 = d_a / math.sqrt(2.0)
    y2 = y1 * (1.0 + c * c) / (2.0 * c)
    rho = -(1.0 + c) / math.sqrt(2.0 * (1.0 + c * c))
    cutoffs = solve_rate(np.array([1.0 - hi, 1.0 - lo]), d_a, c, -1.0)
    with np.errstate(invalid="ignore"):
        x = -(1.0 - c) * cutoffs - d_a * s / 2.0
        xp = -(1.0 - c) * cutoffs + d_a * s / (2.0 * c)
    terms = (
        bvn_cdf(x, np.full(2, y1), rho)
        + bvn_cdf(x, np.full(2, y2), rho)
        + bvn_cdf(xp, np.full(2, -y2), rho)
        + bvn_cdf(xp, np.full(2, -y1), rho)
    )
    area = float(terms[1] - terms[0])
    if c > 0:
        area -= hi - lo
    # Rounding can leave a full-range area a hair above 1 (0.2 / 0.2).
    return min(max(area / width, 0.0), 1.0)


def curve_tpf(d_a: float, c: float, fpf: FloatArray) -> FloatArray:
    """TPF of the fitted curve at each FPF in ``[0, 1]``."""
    if math.isinf(d_a):
        return np.where(fpf > 0.0, 1.0, 0.0)
    if is_zero(c):
        a, b = binormal_equivalent(d_a, c)
        with np.errstate(divide="ignore"):
            return np.asarray(ndtr(a + b * ndtri(fpf)), dtype=np.float64)
    return rate(solve_rate(fpf, d_a, c, -1.0), d_a, c, 1.0)
