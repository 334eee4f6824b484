"""The binormal likelihood-ratio ("proper" binormal, PROPROC) ROC fit of one reader's ratings.

Model
-----
Metz and Pan (1999): the ratings are a monotone transform of the likelihood ratio of a binormal
decision variable, so the fitted curve is proper (never crosses the chance line, concave). In
Pesce and Metz's (2007) parameters ``d_a >= 0`` (separation) and ``-1 < c < 1`` (asymmetry;
``c = 0`` is the binormal curve with slope 1), with ``s = sqrt(1 + c^2)``, a cutoff ``v`` on
their decision-variable scale has

    FPF(v) = Phi(-(1 - c) v - d_a s / 2) + Phi(-(1 - c) v + d_a s / (2 c)) - [c > 0]
    TPF(v) = Phi(-(1 + c) v + d_a s / 2) + Phi(-(1 + c) v + d_a s / (2 c)) - [c > 0]

on the side of ``d_a s / (4 c)`` where the likelihood ratio is monotone. Ordered rating
categories ``k = 1..K`` are cut at ``v_1 < ... < v_{K-1}``; the negatives' category
probabilities are ``p_k = FPF(v_{k-1}) - FPF(v_k)`` (``FPF(v_0) = 1``, ``FPF(v_K) = 0``), the
positives' ``q_k`` likewise from TPF, and the estimates maximize the multinomial log-likelihood
``sum_k n_k log p_k + m_k log q_k`` over ``(d_a, c, v_1..v_{K-1})``.

The area under the curve (Pan and Metz 1997) is
``AUC = Phi(d_a / sqrt 2) + 2 Phi2(-d_a / sqrt 2, 0; -(1 - c^2) / (1 + c^2))``; partial areas
are sums of bivariate normal probabilities between the cutoffs that bound the range.

As MRMCaov 0.3.0
----------------
This reproduces ``MRMCaov::binormalLR_auc`` (``binormalLR_params`` and ``auc`` for the
``binormalLR`` curve): the same categories (ratings merged where MRMCaov's ``roc_counts`` merges
them), the same probability floor (1e-10), the same parameter space, MRMCaov's starting values
for ``(d_a, c)`` (three least-squares lines through probit-scale ROC points, and five more on an
arc when they disagree) with the best log-likelihood kept, and MRMCaov's rule for data without
interior ROC points (no fit: AUC 1 for perfect separation, ``d_a = inf``; 0.5 when every case
has the same rating or the order is perfectly reversed, ``d_a = 0``; both with ``c = 0``).
Differences:

- The likelihood is maximized by damped (Levenberg-Marquardt) Newton steps with the analytic
  score and observed information (the Fisher information where the observed one is not
  positive definite), holding ``d_a`` at 0 when the score pushes it below, until the Newton
  decrement is below 1e-18 or the log-likelihood gains less than 1e-10 in a step (1e-8 in 20
  steps). MRMCaov runs ``trust::trust`` with the Fisher information as its Hessian and stops
  at a relative change of 1.5e-8 in the objective (about 1e-6 here). MRMCaov stops at
  log-likelihoods up to 2e-8 below ours on Van Dyke (reader 4, treatment 1: -45.704151989 vs
  -45.704151974) and 1.6e-7 below on a simulated reader whose positives fill only the top
  two categories (the likelihood rises along a ridge towards ``d_a = 0``, ``c = 1``). The
  likelihood is flat in ``d_a`` near 0, so the parameters there differ widely (Van Dyke
  reader 4, treatment 1: ``d_a`` 0.04 vs MRMCaov's 0.097) while the AUCs agree to 2e-6 (the
  ridge reader: 7e-5). Elsewhere the two log-likelihoods agree to 1e-9.
- Ratings that rank the groups no better than chance have their maximum on the chance line
  ``d_a = c = 0`` (both groups at the pooled category shares), which the search only
  approaches (``c = 0`` switches to the binormal form); that line is scored as a candidate of
  its own, and searches heading for it stop early.
- The starting cutoffs for each ``(d_a, c)`` match the model's share of all cases above each
  category to the observed share; MRMCaov searches them one at a time.
- MRMCaov stops with an error for a partial area over specificity up to 1 when ``c < 0`` (over
  sensitivity up to 1 when ``c > 0``) and can return areas outside ``[0, 1]`` when ``|c|`` is
  small: its cutoff search (``binormalLR_cutoff``) starts at an infinite cutoff or stops short.
  Here the cutoffs are found by bisection on the model's support, and the partial areas agree
  with the numerical integral of MRMCaov's own fitted curve.

References
----------
Metz CE, Pan X (1999). "Proper" binormal ROC curves: theory and maximum-likelihood estimation.
Journal of Mathematical Psychology 43(1):1-33. doi:10.1006/jmps.1998.1218
Pan X, Metz CE (1997). The "proper" binormal model: parametric receiver operating characteristic
curve estimation with degenerate data. Academic Radiology 4(5):380-389.
doi:10.1016/S1076-6332(97)80121-3
Pesce LL, Metz CE (2007). Reliable and computationally efficient maximum-likelihood estimation of
"proper" binormal ROC curves. Academic Radiology 14(7):814-829. doi:10.1016/j.acra.2007.03.012
Smith BJ, Hillis SL (2020-). MRMCaov: multi-reader multi-case analysis of variance, R package
0.3.0. https://github.com/brian-j-smith/MRMCaov
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analysis.partial import PartialArea
from analysis.proproc._area import curve_tpf, full_auc, partial_auc
from analysis.proproc._model import Counts, FloatArray, derivatives, loglik
from analysis.proproc._starts import (
    arc_starts,
    category_counts,
    degenerate_auc,
    empirical_points,
    primary_starts,
    start_cutoffs,
)

__all__ = ["ProprocFit", "fit_proproc", "loglik_at"]

# Stop when the Newton decrement g' I^-1 g (twice the predicted gain) falls below this.
DECREMENT_TOL = 1e-18
MAX_ITER = 500
# A step that gains less than this ends the search (MRMCaov's trust stops at 1.5e-8 |loglik|).
GAIN_TOL = 1e-10
# A search that gains less than CRAWL_GAIN over CRAWL_STEPS steps is creeping along a flat
# ridge (often towards the edge of the parameter space): the log-likelihood has settled.
CRAWL_STEPS = 20
CRAWL_GAIN = 1e-8
# A search this close to d_a = c = 0 and still below the chance line's log-likelihood is heading
# for that line, which the fit scores exactly as a candidate of its own.
NEAR_CHANCE = 1e-3
# Log-likelihoods this close are the same maximum reached from different starts.
TIE_TOL = 1e-8
# A decrement this small gains less than the rounding error of a log-likelihood near 100.
RESOLUTION_TOL = 1e-12


@dataclass(frozen=True)
class ProprocFit:
    """A fitted binormal likelihood-ratio ROC curve.

    Attributes
    ----------
    d_a, c : float
        Pesce and Metz's parameters (``d_a`` is ``inf`` for perfectly separated ratings).
    converged : bool
        True when the log-likelihood stopped rising: Newton decrement below 1e-18, or gains
        below 1e-10 in a step or 1e-8 over 20 steps (along a flat ridge, where the AUC has
        settled but ``d_a`` and ``c`` may be poorly determined). False when the ratings have no
        interior ROC points (MRMCaov's rule sets the parameters) or the search stopped early.
    message : str
        Why, when not converged; empty otherwise.
    cutoffs : tuple of float
        The fitted category cutoffs on the decision-variable scale (empty without a fit).
    loglik : float
        The maximized log-likelihood (``nan`` without a fit).
    """

    d_a: float
    c: float
    converged: bool
    message: str
    cutoffs: tuple[float, ...] = ()
    loglik: float = math.nan

    def auc(self, partial: PartialArea | None = None) -> float:
        """The full area under the fitted curve, or the partial area ``partial`` describes."""
        if partial is None:
            return full_auc(self.d_a, self.c)
        return partial_auc(self.d_a, self.c, partial)

    def tpf(self, fpf: ArrayLike) -> FloatArray:
        """True-positive fraction of the fitted curve at each false-positive fraction."""
        x = np.asarray(fpf, dtype=np.float64)
        if np.any(~np.isfinite(x)) or np.any((x < 0.0) | (x > 1.0)):
            raise ValueError("false-positive fractions must be numbers in [0, 1]")
        return curve_tpf(self.d_a, self.c, x)


def _ratings(values: ArrayLike, name: str) -> FloatArray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 1:
        raise ValueError(f"PROPROC fit needs at least 1 {name[:-1]} rating; got none")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name[:-1]} ratings contain NaN or infinite values")
    return x


def _near_chance(d_a: float, c: float) -> bool:
    return d_a < NEAR_CHANCE and abs(c) < NEAR_CHANCE


def _positive_definite(a: FloatArray) -> bool:
    try:
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return False
    return True


def _maximize(x0: FloatArray, counts: Counts, chance: float) -> tuple[FloatArray, float, bool, str]:
    """Damped Newton ascent from ``x0``, with ``d_a`` held at its bound 0 when the score
    pushes it below.

    Each step solves ``(I + mu diag I) step = g`` (Levenberg-Marquardt) with ``I`` the observed
    information where it is positive definite, else the Fisher information; a step that sends
    ``d_a`` below 0 is cut at 0. Returns ``(x, loglik, converged, message)``: converged when
    the Newton decrement ``g' I^-1 g`` over the free parameters is below ``DECREMENT_TOL`` or a
    step raises the log-likelihood by less than ``GAIN_TOL``, or ``CRAWL_STEPS`` steps by less
    than ``CRAWL_GAIN`` in all (along a flat ridge); not converged when it nears the
    chance line with ``d_a`` and ``|c|`` below ``NEAR_CHANCE`` while still below its
    log-likelihood ``chance`` (there the curve is within about ``NEAR_CHANCE`` of ``TPF = FPF``).
    """
    x, value = x0, loglik(x0, counts)
    damping = 1e-3
    history = [value]
    for _ in range(MAX_ITER):
        if len(history) > CRAWL_STEPS and history[-1] - history[-1 - CRAWL_STEPS] < CRAWL_GAIN:
            # Creeping along a flat ridge: the likelihood (and the AUC) has settled, the
            # parameters along the ridge have not and would not for many more steps.
            return x, value, True, ""
        if _near_chance(x[0], x[1]) and not chance < value:
            return x, value, False, "the search approaches the chance line d_a = c = 0"
        score, fisher, observed = derivatives(x, counts)
        info = observed if _positive_definite(observed) else fisher
        free = np.ones(x.size, dtype=bool)
        free[0] = not (x[0] <= 0.0 and score[0] <= 0.0)
        g, h = score[free], info[np.ix_(free, free)]
        scale = np.diag(h).copy()
        scale[scale <= 0.0] = 1.0
        try:
            decrement = float(g @ np.linalg.solve(h, g))
        except np.linalg.LinAlgError:
            decrement = math.inf
        if 0.0 <= decrement < DECREMENT_TOL:
            return x, value, True, ""
        while damping < 1e12:
            step = np.zeros(x.size)
            try:
                step[free] = np.linalg.solve(h + damping * np.diag(scale), g)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = x + step
            trial[0] = max(trial[0], 0.0)
            trial_value = loglik(trial, counts)
            if trial_value > value:
                gain = trial_value - value
                x, value = trial, trial_value
                history.append(value)
                damping = max(damping / 10.0, 1e-12)
                if gain < GAIN_TOL:
                    return x, value, True, ""
                break
            if decrement < RESOLUTION_TOL:
                # The predicted gain is below what the log-likelihood can resolve.
                return x, value, True, ""
            damping *= 10.0
        else:
            message = (
                "no damped Newton step raises the likelihood "
                f"(Newton decrement {decrement:.3g}): the maximum is on the edge of the "
                "parameter space"
            )
            return x, value, False, message
    return x, value, False, f"no convergence in {MAX_ITER} Newton steps"


def _fit_from(
    d_a: float, c: float, counts: Counts, chance: float
) -> tuple[FloatArray, float, bool, str]:
    x0 = np.concatenate(([d_a, c], start_cutoffs(d_a, c, counts)))
    return _maximize(x0, counts, chance)


def _chance(counts: Counts) -> tuple[FloatArray, float, bool, str]:
    """The chance line ``d_a = c = 0`` with its best cutoffs (both groups' categories at the
    pooled shares): the maximum for ratings that rank the groups no better than chance, which
    the search only approaches (``c = 0`` exactly is the binormal curve ``TPF = FPF``)."""
    x = np.concatenate(([0.0, 0.0], start_cutoffs(0.0, 0.0, counts)))
    return x, loglik(x, counts), True, ""


def loglik_at(
    negatives: ArrayLike, positives: ArrayLike, d_a: float, c: float, cutoffs: ArrayLike
) -> float:
    """The model's log-likelihood of these ratings at given parameters (``-inf`` off support)."""
    counts = category_counts(_ratings(negatives, "negatives"), _ratings(positives, "positives"))
    x = np.concatenate(([d_a, c], np.asarray(cutoffs, dtype=np.float64)))
    if x.size != counts.categories + 1:
        raise ValueError(
            f"{counts.categories} rating categories need {counts.categories - 1} cutoffs; "
            f"got {x.size - 2}"
        )
    return loglik(x, counts)


def fit_proproc(
    negatives: ArrayLike, positives: ArrayLike, *, start: ProprocFit | None = None
) -> ProprocFit:
    """Fit the binormal likelihood-ratio ROC curve to one reader x treatment's ratings.

    Parameters
    ----------
    negatives, positives : array_like
        Ratings of the non-diseased and diseased cases (higher = more suspicious); any
        ordered numbers, ties allowed.
    start : ProprocFit, optional
        A previous fit (e.g. on the full data, for a jackknife refit) to start from instead
        of MRMCaov's starting values; those are still used when the search from ``start``
        does not converge or ``start`` is the chance line or a perfect separation.

    Returns
    -------
    ProprocFit
        See the module docstring for the model, the estimator and MRMCaov's rules.

    Raises
    ------
    ValueError
        With no negative or no positive rating, or with NaN or infinite ratings.
    """
    neg = _ratings(negatives, "negatives")
    pos = _ratings(positives, "positives")
    fpf, tpf = empirical_points(neg, pos)
    degenerate = degenerate_auc(fpf, tpf)
    if degenerate is not None:
        reason = (
            "every case has the same rating"
            if fpf.size <= 2
            else "the ratings separate the groups perfectly"
            if degenerate == 1.0
            else "the ratings order the groups perfectly in reverse"
        )
        return ProprocFit(
            d_a=math.inf if degenerate == 1.0 else 0.0,
            c=0.0,
            converged=False,
            message=f"no interior ROC points ({reason}): AUC {degenerate:g} by MRMCaov's rule",
        )
    counts = category_counts(neg, pos)
    chance = _chance(counts)
    results = []
    # A start at the chance line (or a perfect separation) would not move: use MRMCaov's.
    if start is not None and math.isfinite(start.d_a) and not _near_chance(start.d_a, start.c):
        results.append(_fit_from(start.d_a, start.c, counts, chance[1]))
    if not (results and results[0][2]):
        primary = [_fit_from(d_a, c, counts, chance[1]) for d_a, c in primary_starts(fpf, tpf)]
        fitted = [(float(r[0][0]), float(r[0][1])) for r in primary]
        more = [_fit_from(d_a, c, counts, chance[1]) for d_a, c in arc_starts(fitted, full_auc)]
        results += primary + more
    # The chance line last: a fit as good as it wins the tie.
    results.append(chance)
    # Among fits that tie on the log-likelihood, one that converged.
    best = max(r[1] for r in results)
    x, value, converged, message = max(
        results, key=lambda r: (r[1] >= best - TIE_TOL and r[2], r[1])
    )
    return ProprocFit(
        d_a=float(x[0]),
        c=float(x[1]),
        converged=converged,
        message=message,
        cutoffs=tuple(float(v) for v in x[2:]),
        loglik=value,
    )
