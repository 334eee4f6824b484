"""Tail probabilities and quantiles of t, F, chi-square and normal, from ``scipy.special``.

``scipy.stats`` is not used here only because importing it costs about 0.7 s, which would
dominate a ``python -m analysis mrmc`` run; ``scipy.special`` holds the same distribution
functions (those ``scipy.stats`` itself calls) and imports in a fraction of that.
Degrees of freedom may be non-integer (Hillis' approximations) or ``inf``.
"""

from __future__ import annotations

import math

from scipy import special


def t_two_sided_p(statistic: float, df: float | None) -> float:
    """Two-sided p-value of a t statistic (normal when ``df`` is None or infinite)."""
    if df is None or math.isinf(df):
        return float(2.0 * special.ndtr(-abs(statistic)))
    return float(2.0 * special.stdtr(df, -abs(statistic)))


def t_quantile(probability: float, df: float | None) -> float:
    """Quantile of t with ``df`` degrees of freedom (normal when None or infinite)."""
    if df is None or math.isinf(df):
        return float(special.ndtri(probability))
    return float(special.stdtrit(df, probability))


def f_upper_p(statistic: float, df1: float, df2: float) -> float:
    """Upper tail ``P(F(df1, df2) >= statistic)``; chi-square / df1 limit when df2 is infinite."""
    if math.isinf(df2):
        return chi2_upper_p(statistic * df1, df1)
    return float(special.fdtrc(df1, df2, statistic))


def chi2_upper_p(statistic: float, df: float) -> float:
    """Upper tail ``P(X2(df) >= statistic)``."""
    return float(special.chdtrc(df, statistic))
