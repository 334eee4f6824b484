"""The part of the ROC curve a partial area is taken over, as MRMCaov 0.3.0 defines it.

``specificity`` with ``min = a``, ``max = b`` is the area under TPR as a function of FPR for FPR
from ``1 - b`` to ``1 - a`` (specificity between ``a`` and ``b``); ``sensitivity`` swaps the axes:
the area under specificity (``1 - FPR``) as a function of TPR for TPR from ``a`` to ``b``.
``normalize`` divides the area by ``b - a``, so that a perfect reader scores 1 (MRMCaov's
``normalize = TRUE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
PartialKind = Literal["specificity", "sensitivity"]
PARTIAL_KINDS: tuple[PartialKind, ...] = ("specificity", "sensitivity")


@dataclass(frozen=True)
class PartialArea:
    """A range of specificity or sensitivity, ``0 <= min < max <= 1``."""

    kind: PartialKind
    min: float
    max: float
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PARTIAL_KINDS:
            raise ValueError(f"partial area over {self.kind!r}: use {' or '.join(PARTIAL_KINDS)}")
        if not 0.0 <= self.min < self.max <= 1.0:
            raise ValueError(
                f"partial area over {self.kind} from {self.min} to {self.max}: "
                "need 0 <= min < max <= 1"
            )

    @property
    def width(self) -> float:
        return self.max - self.min

    @property
    def label(self) -> str:
        """E.g. ``partial AUC, specificity 0.8-1 (normalized)``."""
        scaled = " (normalized)" if self.normalize else ""
        return f"partial AUC, {self.kind} {self.min:g}-{self.max:g}{scaled}"


def interpolate_ties_max(x: FloatArray, y: FloatArray, at: float) -> FloatArray:
    """Linear interpolation of each row's curve ``(x, y)`` at ``at``, ties resolved by the max.

    ``x`` and ``y`` are ``(B, P)``, each row non-decreasing in both, with ``x[:, 0] <= at <=
    x[:, -1]``. Points that share an ``x`` count as one point with the largest ``y`` (R's
    ``approx(x, y, at, ties = max)``, which MRMCaov uses for the bounds of a partial area).
    """
    rows = np.arange(x.shape[0])
    last = x.shape[1] - 1
    left = np.maximum((x <= at).sum(axis=1) - 1, 0)  # the last point at or before `at`
    x_left, y_left = x[rows, left], y[rows, left]
    x_right = x[rows, np.minimum(left + 1, last)]
    right = (x <= x_right[:, np.newaxis]).sum(axis=1) - 1  # its last tie: the largest y
    y_right = y[rows, right]
    exact = (x_left == at) | (left == last)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = y_left + (y_right - y_left) * ((at - x_left) / (x_right - x_left))
    return np.asarray(np.where(exact, y_left, between), dtype=np.float64)


def empirical_partial_auc(
    negatives: FloatArray, positives: FloatArray, area: PartialArea | None
) -> FloatArray:
    """(Partial) area under the empirical ROC curve from case counts per rating category.

    Parameters
    ----------
    negatives, positives : ndarray, shape (B, L)
        Counts (or case multiplicities) of the negative and positive cases in each of ``L``
        rating categories, lowest rating first; each row is one curve.
    area : PartialArea or None
        The part of the curve (module docstring); None for the whole area.

    Returns
    -------
    ndarray, shape (B,)
        The trapezoidal area under each empirical curve, MRMCaov 0.3.0's ``auc`` method of an
        empirical curve (``R/roc.R``): the curve's points are ``(FPR, TPR)`` at each category
        threshold plus ``(0, 0)``; over specificity from ``a`` to ``b`` the area runs over FPR
        from ``1 - b`` to ``1 - a``, over sensitivity from ``a`` to ``b`` it is the area under
        ``1 - FPR`` as a function of TPR; the end points are linearly interpolated on the curve
        (ties resolved by the largest value, :func:`interpolate_ties_max`) and the points
        strictly inside are kept. ``normalize`` divides by the width of the range.
    """
    # Cumulative counts from the highest category down: the curve from (0, 0) to (1, 1).
    zeros = np.zeros((negatives.shape[0], 1))
    fpr = np.concatenate([zeros, np.cumsum(negatives[:, ::-1], axis=1)], axis=1)
    tpr = np.concatenate([zeros, np.cumsum(positives[:, ::-1], axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr /= fpr[:, -1:]
        tpr /= tpr[:, -1:]
    if area is None:
        whole = np.sum(np.diff(fpr, axis=1) * (tpr[:, :-1] + tpr[:, 1:]) / 2.0, axis=1)
        return np.asarray(whole, dtype=np.float64)
    if area.kind == "specificity":
        x, y = fpr, tpr
        lo, hi = 1.0 - area.max, 1.0 - area.min
        y_lo, y_hi = (interpolate_ties_max(fpr, tpr, bound) for bound in (lo, hi))
    else:
        x, y = tpr, 1.0 - fpr
        lo, hi = area.min, area.max
        y_lo, y_hi = (1.0 - interpolate_ties_max(tpr, fpr, bound) for bound in (lo, hi))
    # Points outside (lo, hi) collapse onto the end points: zero-width trapezoids.
    inside_y = np.where(x <= lo, y_lo[:, np.newaxis], np.where(x >= hi, y_hi[:, np.newaxis], y))
    xs = np.concatenate([np.full_like(zeros, lo), np.clip(x, lo, hi), np.full_like(zeros, hi)], 1)
    ys = np.concatenate([y_lo[:, np.newaxis], inside_y, y_hi[:, np.newaxis]], axis=1)
    result = np.sum(np.diff(xs, axis=1) * (ys[:, :-1] + ys[:, 1:]) / 2.0, axis=1)
    if area.normalize:
        result = result / (hi - lo)
    return np.asarray(result, dtype=np.float64)
