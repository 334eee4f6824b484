"""Small helpers that several analysis modules share."""

from __future__ import annotations

import math


def jsonable_float(x: float | None) -> float | None:
    """A float for JSON: NaN, infinities and None become None (JSON has no NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)
