"""Small helpers that several analysis modules share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable_float(x: float | None) -> float | None:
    """A float for JSON: NaN, infinities and None become None (JSON has no NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


def holm_adjust(p_values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Holm (1979) step-down adjusted p-values, in the input's order.

    With the ``k`` p-values sorted, the adjusted ``p_(i)`` is
    ``max_{l <= i} min(1, (k - l + 1) p_(l))`` (Holm S (1979), Scand J Stat 6(2):65-70).

    The same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]`` and
    R's ``p.adjust(p, "holm")``; written out because statsmodels' Holm branch runs a full
    ``gc.collect()`` on every call (0.2 s in a large process).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p-values must be a 1-D array of numbers in [0, 1]")
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate((p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted
