"""The binormal likelihood-ratio model on Pan and Metz's decision-variable scale ``v``.

With ``s = sqrt(1 + c^2)`` and a cutoff ``v`` (a case is called positive when its ``v`` exceeds
the cutoff), the false- and true-positive fractions are

    FPF(v) = Phi(-(1 - c) v - d_a s / 2) + Phi(-(1 - c) v + d_a s / (2 c)) - [c > 0]
    TPF(v) = Phi(-(1 + c) v + d_a s / 2) + Phi(-(1 + c) v + d_a s / (2 c)) - [c > 0]

on the side of ``bound = d_a s / (4 c)`` where the likelihood ratio is monotone: ``v >= bound``
for ``c < 0`` (where ``FPF = TPF = 1``), ``v <= bound`` for ``c > 0`` (where both are 0). At
``c = 0`` the second terms drop out and the model is the binormal one with slope 1. These are
the formulas of MRMCaov 0.3.0 (``binormalLR_fpr``/``binormalLR_tpr``); ``[c > 0]`` is applied as
``Phi(z1) - Phi(-z2)``, which is the same number without the cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

FloatArray = NDArray[np.float64]

# MRMCaov treats c as zero when all.equal(c, 0) holds: |c| <= sqrt(.Machine$double.eps).
C_ZERO = 1.5e-8
# MRMCaov floors each category probability at 1e-10 before taking logs (binormal_probs).
PROB_FLOOR = 1e-10


def is_zero(c: float) -> bool:
    return abs(c) <= C_ZERO


def support_bound(d_a: float, c: float) -> float:
    """``d_a sqrt(1 + c^2) / (4 c)``: the cutoff where the likelihood ratio turns (inf at c=0)."""
    if is_zero(c):
        return float("inf") if c >= 0 else float("-inf")
    return d_a * math.sqrt(1.0 + c * c) / (4.0 * c)


def _z(v: FloatArray, d_a: float, c: float, sign: float) -> tuple[FloatArray, FloatArray]:
    """``(z1, z2)`` for FPF (``sign = -1``) or TPF (``sign = +1``)."""
    s = np.sqrt(1.0 + c * c)
    slope = 1.0 + sign * c
    z1 = -slope * v + sign * d_a * s / 2.0
    z2 = -slope * v + (d_a * s / (2.0 * c) if not is_zero(c) else np.inf)
    return z1, z2


def rate(v: FloatArray, d_a: float, c: float, sign: float) -> FloatArray:
    """FPF (``sign = -1``) or TPF (``sign = +1``) at cutoffs ``v`` (infinite cutoffs allowed)."""
    z1, z2 = _z(v, d_a, c, sign)
    if is_zero(c):
        return np.asarray(ndtr(z1), dtype=np.float64)
    if c < 0:
        return np.asarray(ndtr(z1) + ndtr(z2), dtype=np.float64)
    return np.asarray(ndtr(z1) - ndtr(-z2), dtype=np.float64)


def _dnorm(z: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi), dtype=np.float64)


def _z_derivatives(
    v: FloatArray, d_a: float, c: float, sign: float
) -> list[tuple[FloatArray, list[FloatArray], dict[str, float | FloatArray]]]:
    """For each normal term of the rate: ``z``, its first derivatives (d_a, c, v) and its
    nonzero second derivatives (``ac``, ``cc``, ``cv``; ``aa``, ``av`` and ``vv`` are 0)."""
    s = math.sqrt(1.0 + c * c)
    z1, z2 = _z(v, d_a, c, sign)
    dv = np.full(v.size, -(1.0 + sign * c))
    terms: list[tuple[FloatArray, list[FloatArray], dict[str, float | FloatArray]]] = [
        (
            z1,
            [np.full(v.size, sign * s / 2.0), sign * (d_a * c / (2.0 * s) - v), dv],
            {"ac": sign * c / (2.0 * s), "cc": sign * d_a / (2.0 * s**3), "cv": -sign},
        )
    ]
    if not is_zero(c):
        terms.append(
            (
                z2,
                [np.full(v.size, s / (2.0 * c)), -sign * v - d_a / (2.0 * c * c * s), dv],
                {
                    "ac": -1.0 / (2.0 * c * c * s),
                    "cc": d_a * (2.0 * s * s + c * c) / (2.0 * c**3 * s**3),
                    "cv": -sign,
                },
            )
        )
    return terms


def rate_derivatives(
    v: FloatArray, d_a: float, c: float, sign: float
) -> tuple[FloatArray, FloatArray]:
    """First and second derivatives of the rate at each finite cutoff.

    Returns ``first`` with rows ``d/d d_a``, ``d/dc``, ``d/dv`` and ``second`` with rows
    ``aa, ac, cc, av, cv, vv`` (``v`` is the cutoff itself). Each term ``Phi(z)`` adds
    ``phi(z) dz`` and ``phi(z) (d2z - z dz dz')``.
    """
    first = np.zeros((3, v.size))
    second = np.zeros((6, v.size))
    pairs = ((0, 0, ""), (0, 1, "ac"), (1, 1, "cc"), (0, 2, ""), (1, 2, "cv"), (2, 2, ""))
    for z, dz, d2z in _z_derivatives(v, d_a, c, sign):
        density = _dnorm(z)
        for i in range(3):
            first[i] += density * dz[i]
        for row, (i, j, name) in enumerate(pairs):
            second[row] += density * (d2z.get(name, 0.0) - z * dz[i] * dz[j])
    return first, second


def in_support(d_a: float, c: float, cutoffs: FloatArray) -> bool:
    """MRMCaov's parameter space: ``d_a >= 0``, ``|c| < 1``, increasing cutoffs on the support."""
    if not (d_a >= 0.0 and abs(c) < 1.0 and np.all(np.diff(cutoffs) > 0)):
        return False
    if is_zero(c):
        return True
    bound = support_bound(d_a, c)
    return bool(cutoffs[0] >= bound) if c < 0 else bool(cutoffs[-1] <= bound)


@dataclass(frozen=True)
class Counts:
    """Ratings collapsed into ordered categories, lowest rating first."""

    negatives: FloatArray
    positives: FloatArray
    levels: FloatArray

    @property
    def categories(self) -> int:
        return int(self.negatives.size)


def _category_probs(rates: FloatArray) -> FloatArray:
    edges = np.concatenate(([1.0], rates, [0.0]))
    return np.asarray(np.maximum(-np.diff(edges), PROB_FLOOR), dtype=np.float64)


def loglik(x: FloatArray, counts: Counts) -> float:
    """Multinomial log-likelihood of both truth groups' category counts; ``-inf`` off support."""
    d_a, c, cutoffs = float(x[0]), float(x[1]), x[2:]
    if not in_support(d_a, c, cutoffs):
        return float("-inf")
    p = _category_probs(rate(cutoffs, d_a, c, -1.0))
    q = _category_probs(rate(cutoffs, d_a, c, 1.0))
    return float(counts.negatives @ np.log(p) + counts.positives @ np.log(q))


def derivatives(x: FloatArray, counts: Counts) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradient of :func:`loglik`, the expected (Fisher) and the observed information.

    Category ``k`` of a group with ``N`` cases and rates ``R`` has probability
    ``p_k = R(v_{k-1}) - R(v_k)``; the score is ``sum_k n_k dp_k / p_k``, the expected
    information ``N sum_k dp_k dp_k' / p_k`` and the observed information
    ``sum_k n_k (dp_k dp_k' / p_k^2 - d2p_k / p_k)``. All analytic.
    """
    d_a, c, cutoffs = float(x[0]), float(x[1]), x[2:]
    m = cutoffs.size
    idx = np.arange(m)
    score = np.zeros(m + 2)
    fisher = np.zeros((m + 2, m + 2))
    observed = np.zeros((m + 2, m + 2))
    for sign, n in ((-1.0, counts.negatives), (1.0, counts.positives)):
        p = _category_probs(rate(cutoffs, d_a, c, sign))
        first, second = rate_derivatives(cutoffs, d_a, c, sign)
        # dR(v_j)/dx for each cutoff j, as rows of a (m, m + 2) matrix.
        dr = np.zeros((m, m + 2))
        dr[:, 0] = first[0]
        dr[:, 1] = first[1]
        dr[idx, idx + 2] = first[2]
        zero = np.zeros((1, m + 2))
        dp = np.vstack((zero, dr)) - np.vstack((dr, zero))
        score += (n / p) @ dp
        fisher += (dp.T * (n.sum() / p)) @ dp
        observed += (dp.T * (n / (p * p))) @ dp
        # sum_k n_k d2p_k / p_k = sum_j w_j d2R(v_j), w_j = n_{j+1}/p_{j+1} - n_j/p_j.
        w = n[1:] / p[1:] - n[:-1] / p[:-1]
        hess = np.zeros((m + 2, m + 2))
        hess[0, 0] = w @ second[0]
        hess[0, 1] = hess[1, 0] = w @ second[1]
        hess[1, 1] = w @ second[2]
        hess[0, idx + 2] = hess[idx + 2, 0] = w * second[3]
        hess[1, idx + 2] = hess[idx + 2, 1] = w * second[4]
        hess[idx + 2, idx + 2] = w * second[5]
        observed -= hess
    return score, fisher, observed


def solve_decreasing(
    func: Callable[[FloatArray], FloatArray], targets: FloatArray, d_a: float, c: float
) -> FloatArray:
    """Cutoffs ``v`` on the support where a rate-like ``func`` (falling from 1 to 0) hits targets.

    Targets at or below 0 map to the upper end of the support, at or above 1 to the lower end.
    Bisection after bracketing, vectorized over the targets, to the resolution of a double.
    """
    targets = np.asarray(targets, dtype=np.float64)
    bound = support_bound(d_a, c)
    finite = math.isfinite(bound)
    top = bound if finite and c > 0 else math.inf
    bottom = bound if finite and c < 0 else -math.inf
    lo = np.full(targets.shape, bottom if finite and c < 0 else -1.0)
    hi = np.full(targets.shape, top if finite and c > 0 else 1.0)
    inside = (targets > 0.0) & (targets < 1.0)
    for _ in range(200):
        low_bad = inside & (func(lo) < targets)
        high_bad = inside & (func(hi) > targets)
        if not (low_bad.any() or high_bad.any()):
            break
        lo = np.where(low_bad, lo - 2.0 * (hi - lo) - 1.0, lo)
        hi = np.where(high_bad, hi + 2.0 * (hi - lo) + 1.0, hi)
    for _ in range(110):
        mid = (lo + hi) / 2.0
        go_up = func(mid) > targets
        lo, hi = np.where(go_up, mid, lo), np.where(go_up, hi, mid)
    out = (lo + hi) / 2.0
    out = np.where(targets <= 0.0, top, out)
    out = np.where(targets >= 1.0, bottom, out)
    return np.asarray(out, dtype=np.float64)


def solve_rate(targets: FloatArray, d_a: float, c: float, sign: float) -> FloatArray:
    """Cutoffs where FPF (``sign = -1``) or TPF (``sign = +1``) equals each target."""
    return solve_decreasing(lambda v: rate(v, d_a, c, sign), targets, d_a, c)
