"""Non-inferiority tests and Holm-adjusted p-values of the pairwise treatment differences.

Both work on the pairwise differences an OR or DBM analysis already holds (estimate, standard
error and df of ``a - b``), so they apply to every figure of merit, covariance and factor
setting without touching the inference itself.

Non-inferiority (FDA 2012 guidance on reader studies; CONSORT extension for non-inferiority
trials, Piaggio et al. 2012, doi:10.1001/jama.2012.87802)
    With margin ``M > 0``, the hypotheses for a test treatment against the reference are
    ``H0: theta_test - theta_ref <= -M`` against ``H1: theta_test - theta_ref > -M``.
    Non-inferiority is shown when the lower limit of the two-sided ``1 - alpha`` interval of
    ``d = theta_test - theta_ref``, ``L = d - t_{1 - alpha/2, df} SE``, exceeds ``-M``: a
    one-sided test at level ``alpha / 2``, with statistic ``(d + M) / SE`` and p-value
    ``P(T_df > (d + M) / SE)`` (standard normal where the difference has no df, FRRC). The
    decision is ``L > -M``, equivalently ``p < alpha / 2``. ``d``, ``SE`` and ``df`` are those
    of the OR (or DBM) difference, so with ``t`` treatments each test treatment is compared
    with the reference on the pooled error term of the global test.
Holm (1979, "A simple sequentially rejective multiple test procedure", Scandinavian Journal of
Statistics 6(2):65-70, https://www.jstor.org/stable/4615733)
    With the ``k`` p-values sorted, ``p_(1) <= ... <= p_(k)``, the adjusted value of ``p_(i)``
    is ``max_{l <= i} min(1, (k - l + 1) p_(l))``: R's ``p.adjust(p, "holm")``, which also
    leaves undefined p-values (NaN) out of ``k`` and undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from scipy import special

from analysis._common import holm_adjust
from analysis.mrmc.distributions import t_quantile
from analysis.mrmc.results import Difference, _json_float

Adjust = Literal["none", "holm"]
ADJUST_METHODS: tuple[Adjust, ...] = ("none", "holm")


@dataclass(frozen=True)
class NonInferiorityComparison:
    """One test treatment against the reference: ``pair`` is ``"test - reference"``.

    ``lower`` is the lower limit of the two-sided ``1 - alpha`` interval of the difference,
    ``statistic`` is ``(estimate + margin) / se`` and ``p_value`` its one-sided upper-tail
    probability; ``non_inferior`` is ``lower > -margin``.
    """

    pair: str
    estimate: float
    se: float
    df: float | None
    lower: float
    statistic: float
    p_value: float
    non_inferior: bool


@dataclass(frozen=True)
class NonInferiority:
    """Non-inferiority of every other treatment against ``reference`` with ``margin``."""

    margin: float
    reference: str
    one_sided_alpha: float
    comparisons: tuple[NonInferiorityComparison, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become null)."""
        return {
            "margin": self.margin,
            "reference": self.reference,
            "one_sided_alpha": self.one_sided_alpha,
            "comparisons": [
                {
                    "pair": c.pair,
                    "estimate": _json_float(c.estimate),
                    "se": _json_float(c.se),
                    "df": _json_float(c.df),
                    "lower": _json_float(c.lower),
                    "statistic": _json_float(c.statistic),
                    "p_value": _json_float(c.p_value),
                    "non_inferior": c.non_inferior,
                }
                for c in self.comparisons
            ],
        }

    def to_lines(self) -> list[str]:
        """The comparisons as rows of the readable report."""
        lines = [
            "",
            f"non-inferiority, margin {self.margin:g} against {self.reference} "
            f"(one-sided, level {self.one_sided_alpha:g})",
            f"{'difference':<16}{'estimate':>10}{'lower':>10}{'p':>9}  decision",
        ]
        for c in self.comparisons:
            decision = "non-inferior" if c.non_inferior else "not shown"
            lines.append(
                f"{c.pair:<16}{c.estimate:>10.6f}{c.lower:>10.6f}{c.p_value:>9.4g}  {decision}"
            )
        return lines


def upper_t_p(statistic: float, df: float | None) -> float:
    """``P(T_df > statistic)`` (standard normal when ``df`` is None or infinite)."""
    if df is None or math.isinf(df):
        return float(special.ndtr(-statistic))
    return float(special.stdtr(df, -statistic))


def check_margin(margin: float | None, reference: str | None) -> None:
    """Raise ValueError for a margin outside (0, 1), or a reference without a margin."""
    if margin is None:
        if reference is not None:
            raise ValueError("a reference treatment needs a non-inferiority margin (--margin)")
        return
    if not 0.0 < margin < 1.0:
        raise ValueError(f"the non-inferiority margin must be between 0 and 1, got {margin}")


def non_inferiority(
    differences: Sequence[Difference],
    treatments: Sequence[str],
    *,
    margin: float,
    reference: str | None = None,
    alpha: float = 0.05,
) -> NonInferiority:
    """Non-inferiority of each treatment against the reference (module docstring).

    Parameters
    ----------
    differences : sequence of Difference
        The pairwise differences ``a - b`` of an OR or DBM analysis, one per pair ``a < b`` in
        the order of ``treatments`` (as :func:`itertools.combinations` lists them).
    treatments : sequence of str
        Treatment names in the order of first appearance.
    margin : float
        The non-inferiority margin ``M``, in (0, 1), on the scale of the figure of merit.
    reference : str, optional
        The reference treatment; the first of ``treatments`` by default (``unassisted`` in the
        platform's exports).
    alpha : float
        The two-sided level of the interval; the test is one-sided at ``alpha / 2``.

    Returns
    -------
    NonInferiority
        One comparison ``test - reference`` per other treatment, in treatment order.

    Raises
    ------
    ValueError
        For a margin outside (0, 1) or a reference that is not a treatment.
    """
    check_margin(margin, reference)
    if reference is None:
        reference = treatments[0]
    if reference not in treatments:
        raise ValueError(
            f"reference treatment {reference!r} is not in the data: choose one of "
            f"{', '.join(treatments)}"
        )
    pairs = list(combinations(range(len(treatments)), 2))
    if len(pairs) != len(differences):
        raise ValueError(
            f"{len(treatments)} treatments need {len(pairs)} differences, got {len(differences)}"
        )
    ref = treatments.index(reference)
    by_pair = dict(zip(pairs, differences, strict=True))
    comparisons = []
    for test in range(len(treatments)):
        if test == ref:
            continue
        difference = by_pair[(min(test, ref), max(test, ref))]
        sign = 1.0 if test < ref else -1.0  # the difference is a - b with a < b
        estimate = sign * difference.estimate
        se, df = difference.se, difference.df
        lower = estimate - t_quantile(1.0 - alpha / 2.0, df) * se
        statistic = (
            (estimate + margin) / se if se > 0.0 else math.copysign(math.inf, estimate + margin)
        )
        comparisons.append(
            NonInferiorityComparison(
                pair=f"{treatments[test]} - {reference}",
                estimate=estimate,
                se=se,
                df=df,
                lower=lower,
                statistic=statistic,
                p_value=upper_t_p(statistic, df),
                non_inferior=bool(lower > -margin),
            )
        )
    return NonInferiority(
        margin=margin,
        reference=reference,
        one_sided_alpha=alpha / 2.0,
        comparisons=tuple(comparisons),
    )


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm's step-down adjusted p-values, as R's ``p.adjust(p, "holm")`` (module docstring).

    Undefined p-values (NaN, from a zero standard error) stay undefined and are not counted.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, math.nan)
    defined = np.isfinite(p)
    if defined.any():
        adjusted[defined] = holm_adjust(p[defined])
    return tuple(float(value) for value in adjusted)


class _HasDifferences(Protocol):
    @property
    def differences(self) -> tuple[Difference, ...]: ...
    @property
    def treatment_value(self) -> Any: ...
    @property
    def alpha(self) -> float: ...


ResultT = TypeVar("ResultT", bound=_HasDifferences)


def with_inference_options(
    result: ResultT,
    *,
    margin: float | None = None,
    reference: str | None = None,
    adjust: Adjust = "none",
) -> ResultT:
    """``result`` (an OR or DBM result) with its non-inferiority tests and adjusted p-values.

    Sets the result's ``non_inferiority`` (None without a margin), ``adjust`` and
    ``p_adjusted`` (one per difference, None without adjustment) fields.
    """
    if adjust not in ADJUST_METHODS:
        raise ValueError(
            f"unknown adjustment {adjust!r}: choose one of {', '.join(ADJUST_METHODS)}"
        )
    check_margin(margin, reference)
    treatments = list(result.treatment_value)
    tests = (
        None
        if margin is None
        else non_inferiority(
            result.differences,
            treatments,
            margin=margin,
            reference=reference,
            alpha=result.alpha,
        )
    )
    p_adjusted = None if adjust == "none" else holm([d.p_value for d in result.differences])
    # mypy cannot see the dataclass fields through the protocol; every caller passes one.
    return replace(  # type: ignore[type-var]
        result, non_inferiority=tests, adjust=adjust, p_adjusted=p_adjusted
    )
