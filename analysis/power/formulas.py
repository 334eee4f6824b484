"""Power of the OR test of two treatments from OR variance components (Hillis et al. 2011).

For a pivotal study with ``J`` readers and ``K`` cases, an effect ``d`` (the difference of the
two reader-averaged figures of merit) and OR components estimated on a pilot whose readers each
read ``n*`` cases (:class:`analysis.power.pilot.PowerComponents`), the case-dependent
components are scaled by ``s = n* / n`` where ``n`` is the number of cases each pivotal reader
reads (``K`` in a factorial study). With ``E = max(cov2 - cov3, 0)`` and
``var_TR+ = max(var_TR, 0)`` (Hillis, Obuchowski and Berbaum 2011, eq. 10):

RRRC
    ``den = var_TR+ + s (var_error - cov1 + (J - 1) E)``, noncentrality
    ``ncp = J d^2 / (2 den)``, ``df2 = den^2 (J - 1) / (var_TR+ + s (var_error - cov1 - E))^2``,
    power ``P(F(1, df2; ncp) > F_{1 - alpha}(1, df2))``.
FRRC
    ``den = s (var_error - cov1 + (J - 1) E)``, power ``P(X2(1; ncp) > X2_{1 - alpha}(1))``
    (no df2; the critical value reported is the chi-square one).
RRFC
    ``den = var_TR+ + s (var_error - cov1 - E)``, ``df2 = J - 1``.

These are RJafroc 2.1.3's ``SsPowerGivenJKOrVarCom`` formulas, and the numbers equal its
``SsPowerGivenJK(method = "OR")`` (tests/data/rjafroc_power.R). RJafroc's ``var_TR`` is
``MS_TR - var_error + cov1 + max(cov2 - cov3, 0)`` (its ``OROutput``), the truncated excess inside
the estimate: :mod:`analysis.mrmc` reports the untruncated one (``... + cov2 - cov3``), so the
power takes RJafroc's (on Franken, cov2 < cov3: -0.00068389 here and in RJafroc, -0.00071276 in
``analysis.mrmc``; both are then set to 0).

Split-plot pivotal studies (``G`` reader groups of ``J / G`` readers, each group reading its own
``K / G`` cases in both treatments; Obuchowski, Gallas and Hillis 2012). Two readers of different
groups share no case, so their error covariances are zero and the variance of the difference of
the reader-averaged figures of merit is
``(2 / J) (var_TR + s (var_error - cov1 + (J / G - 1)(cov2 - cov3)))`` with ``s = n* G / K``:
the formulas above with ``(J - 1) E`` replaced by ``(J / G - 1) E`` in ``den`` and ``E`` by
``(J / G - 1) / (J - 1) E`` in the expected ``MS_TR`` (the df2 denominator and the RRFC ``den``),
the pooled ``cov2 - cov3`` over all reader pairs of the split-plot OR analysis (MRMCaov's
partially paired design, :mod:`analysis.mrmc`). With ``G = 1`` they are the factorial formulas.
No peer computes this: RJafroc 2.1.3 removed its split-plot support and MRMCaov 0.3.0 has no
power functions. ``benchmarks/validate_power.md`` compares it with simulated rejection rates
(24 split-plot designs: predicted minus empirical power -0.002 on average, 0.018 in absolute
value; the factorial formula applied to them overstates their power by 0.21).

Sample size (:func:`cases_for_power`) is RJafroc's ``SsSampleSizeKGivenJ`` search: the smallest
``K`` from 2 (``2 G`` for split-plot, in steps of ``G``) whose power reaches the target, up to
``max_cases`` (RJafroc stops at 2001 and returns it whatever its power; here that is an error
that says how far the power got and its limit with infinitely many cases). RJafroc compares
``power > target`` for RRRC and ``>=`` for the others; here ``>=`` for all (it differs only
when a power equals the target to the last bit). RJafroc 2.1.3 returns the bare ``K`` without
its power for RRFC (its ``searchNumCasesOR`` if/else chain has no RRFC return).

RJafroc's ``method = "DBM"`` (without ``UseDBMHB2004``) converts DBM mean squares to these OR
components; with the jackknife they are the same components, and its powers equal the OR ones
to 1e-14 (tests/data/rjafroc_power.json ``dbm_vs_or``). ``UseDBMHB2004 = TRUE`` is Hillis and
Berbaum (2004)'s older DBM method (FRRC on an F with ``K - 1`` df, ``max(var_TC, 0)``), which the
2011 paper replaces; it differs (Van Dyke FRRC, J = 6, K = 114, d = 0.05: 0.7828 against 0.7896)
and is not offered.

References
----------
Hillis SL, Obuchowski NA, Berbaum KS (2011). Power estimation for multireader ROC methods: an
updated and unified approach. Acad Radiol 18(2):129-142. doi:10.1016/j.acra.2010.09.007
Hillis SL, Berbaum KS (2004). Power estimation for the Dorfman-Berbaum-Metz method. Acad Radiol
11(11):1260-1273. doi:10.1016/j.acra.2004.08.009
Hillis SL, Schartz KM (2018). Multireader sample size program for diagnostic studies:
demonstration and methodology. J Med Imaging 5(4):045503. doi:10.1117/1.JMI.5.4.045503
Obuchowski NA, Gallas BD, Hillis SL (2012). Multi-reader ROC studies with split-plot designs: a
comparison of statistical methods. Acad Radiol 19(12):1508-1517. doi:10.1016/j.acra.2012.09.012
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from analysis.power.pilot import PowerComponents
from analysis.power.results import PowerResult, SampleSizeResult

FloatArray = NDArray[np.float64]
Factors = Literal["RRRC", "FRRC", "RRFC"]
FACTORS: tuple[Factors, ...] = ("RRRC", "FRRC", "RRFC")
MAX_CASES = 2000


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def check_plan(
    *,
    readers: int,
    effect: float,
    alpha: float,
    factors: str,
    reader_groups: int,
) -> None:
    """Raise ValueError naming a bad number of readers, effect, alpha, factors or groups."""
    _check_int("the number of readers", readers, 2)
    groups = _check_int("the number of reader groups", reader_groups, 1)
    if readers % groups:
        raise ValueError(
            f"{readers} readers cannot form {groups} equal reader groups: the number of "
            "readers must be a multiple of the number of groups"
        )
    if not (isinstance(effect, int | float) and math.isfinite(effect)) or effect == 0:
        raise ValueError(f"the effect must be a finite non-zero difference, got {effect!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if factors not in FACTORS:
        raise ValueError(f"unknown factors {factors!r}: choose one of {', '.join(FACTORS)}")


def power_arrays(
    components: PowerComponents,
    *,
    readers: ArrayLike,
    cases: ArrayLike,
    effect: float,
    alpha: float,
    factors: Factors,
    reader_groups: int = 1,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(power, ncp, df2, critical) for every broadcast pair of ``readers`` and ``cases``.

    No validation (see :func:`check_plan`); ``df2`` is NaN for FRRC. Formulas in the module
    docstring.
    """
    j = np.asarray(readers, dtype=np.float64)
    k = np.asarray(cases, dtype=np.float64)
    c = components
    scale = c.cases_per_reader * reader_groups / k
    var_tr = max(c.var_TR, 0.0)
    excess = max(c.cov2 - c.cov3, 0.0)
    same_group = j / reader_groups - 1.0  # the other readers of a reader's group
    expected_ms_tr = var_tr + scale * (
        c.var_error - c.cov1 - same_group / np.maximum(j - 1.0, 1.0) * excess
    )
    if factors == "RRFC":
        den = expected_ms_tr
    else:
        den = (0.0 if factors == "FRRC" else var_tr) + scale * (
            c.var_error - c.cov1 + same_group * excess
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ncp = j * effect**2 / 2.0 / den
    if factors == "FRRC":
        critical = np.full(np.broadcast(j, k).shape, special.chdtri(1.0, alpha))
        power = 1.0 - special.chndtr(critical, 1.0, ncp)
        df2 = np.full(critical.shape, math.nan)
    else:
        if factors == "RRRC":
            df2 = den**2 * (j - 1.0) / expected_ms_tr**2
        else:
            df2 = np.broadcast_to(j - 1.0, np.broadcast(j, k).shape).astype(np.float64)
        critical = special.fdtri(1.0, df2, 1.0 - alpha)
        power = 1.0 - special.ncfdtr(1.0, df2, ncp, critical)
    shape = np.broadcast(j, k).shape
    return (
        np.broadcast_to(power, shape).astype(np.float64),
        np.broadcast_to(ncp, shape).astype(np.float64),
        np.broadcast_to(df2, shape).astype(np.float64),
        np.broadcast_to(critical, shape).astype(np.float64),
    )


def power_given(
    components: PowerComponents,
    *,
    readers: int,
    cases: int,
    effect: float,
    alpha: float = 0.05,
    factors: Factors = "RRRC",
    reader_groups: int = 1,
) -> PowerResult:
    """Power of the OR test of two treatments for a pivotal study of ``readers`` x ``cases``.

    Parameters
    ----------
    components : PowerComponents
        OR components of the pilot (:func:`analysis.power.pilot.pilot_components`).
    readers, cases : int
        Readers (at least 2) and cases (at least 2, a multiple of ``reader_groups``) of the
        pivotal study; with reader groups, each group reads ``cases / reader_groups`` cases.
    effect : float
        The difference of the two reader-averaged figures of merit to detect (sign ignored).
    alpha : float
        Two-sided size of the test.
    factors : {"RRRC", "FRRC", "RRFC"}
        Random readers and cases, cases only, or readers only.
    reader_groups : int
        1 for a factorial study; ``G`` for a split-plot study of ``G`` reader groups.

    Returns
    -------
    PowerResult
        The power, noncentrality, df2 (None for FRRC) and critical value, with the components
        used. Formulas and references in :mod:`analysis.power.formulas`.

    Raises
    ------
    ValueError
        On a bad number of readers, cases or groups, a zero effect, alpha outside (0, 1) or
        unknown factors.
    """
    check_plan(
        readers=readers, effect=effect, alpha=alpha, factors=factors, reader_groups=reader_groups
    )
    _check_cases(cases, reader_groups)
    power, ncp, df2, critical = power_arrays(
        components,
        readers=readers,
        cases=cases,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    return PowerResult(
        power=float(power),
        ncp=float(ncp),
        df2=None if factors == "FRRC" else float(df2),
        f_critical=float(critical),
        statistic_name="X2" if factors == "FRRC" else "F",
        readers=readers,
        cases=cases,
        reader_groups=reader_groups,
        effect=effect,
        alpha=alpha,
        factors=factors,
        components=components,
    )


def _check_cases(cases: object, reader_groups: int) -> int:
    k = _check_int("the number of cases", cases, 2 * reader_groups)
    if k % reader_groups:
        raise ValueError(
            f"{k} cases cannot be split into {reader_groups} equal case blocks: the number of "
            "cases must be a multiple of the number of reader groups"
        )
    return k


def cases_for_power(
    components: PowerComponents,
    *,
    readers: int,
    target_power: float,
    effect: float,
    alpha: float = 0.05,
    factors: Factors = "RRRC",
    reader_groups: int = 1,
    max_cases: int = MAX_CASES,
) -> SampleSizeResult:
    """The smallest number of cases whose power reaches ``target_power`` (RJafroc's search).

    Parameters as :func:`power_given`, with ``target_power`` in (0, 1) and ``max_cases`` the
    largest ``K`` tried. All candidate ``K`` are evaluated at once (vectorised).

    Raises
    ------
    ValueError
        On bad input (as :func:`power_given`, and a target outside (0, 1)), or when no ``K`` up
        to ``max_cases`` reaches the target: the message gives the power at ``max_cases`` and
        the limit of the power with infinitely many cases (below the target for RRRC and RRFC
        when the reader variability alone is too large: only more readers help then).
    """
    check_plan(
        readers=readers, effect=effect, alpha=alpha, factors=factors, reader_groups=reader_groups
    )
    if not 0.0 < target_power < 1.0:
        raise ValueError(f"the target power must be between 0 and 1, got {target_power}")
    limit = _check_int("the largest number of cases", max_cases, 2 * reader_groups)
    candidates = np.arange(2 * reader_groups, limit + 1, reader_groups)
    power, *_ = power_arrays(
        components,
        readers=readers,
        cases=candidates,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    reached = np.flatnonzero(power >= target_power)
    if reached.size == 0:
        ceiling = _power_limit(components, readers, effect, alpha, factors, reader_groups)
        raise ValueError(
            f"no number of cases up to {candidates[-1]} reaches power {target_power:g} with "
            f"{readers} readers (power {power[-1]:.4f} at {candidates[-1]} cases, "
            f"{ceiling:.4f} with infinitely many): add readers, or raise the case limit"
        )
    k = int(candidates[reached[0]])
    at_k = power_given(
        components,
        readers=readers,
        cases=k,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    return SampleSizeResult(cases=k, target_power=target_power, max_cases=limit, at_cases=at_k)


def _power_limit(
    components: PowerComponents,
    readers: int,
    effect: float,
    alpha: float,
    factors: Factors,
    reader_groups: int,
) -> float:
    """The power as the number of cases grows without bound (1 when nothing bounds it)."""
    if factors == "FRRC" or max(components.var_TR, 0.0) == 0.0:
        return 1.0
    power, *_ = power_arrays(
        components,
        readers=readers,
        cases=math.inf,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    return float(power)
