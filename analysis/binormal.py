"""The binormal ROC model fitted by maximum likelihood to ordinal ratings, as MRMCaov 0.3.0.

Model (Dorfman and Alf 1969): a negative case's latent score is ``N(0, 1)``, a positive's
``N(a / b, 1 / b^2)``; a case falls in rating category ``l`` (of ``L``, lowest first) when its
score lies between the cutoffs ``c_(l-1) < c_l`` (``c_0 = -inf``, ``c_L = inf``). The curve is
``TPR = Phi(a + b Phi^-1(FPR))``, ``b > 0``, and its area ``AUC = Phi(a / sqrt(1 + b^2))``.

Estimand and estimator: ``(a, b, c_1 .. c_(L-1))`` maximise
``sum_l n_l log p_l + m_l log q_l`` with ``n_l``, ``m_l`` the negative and positive counts of
category ``l``, ``p_l = Phi(-c_(l-1)) - Phi(-c_l)`` and ``q_l = Phi(a - b c_(l-1)) - Phi(a - b
c_l)`` (each floored at 1e-10, as MRMCaov's ``binormal_probs``). The categories are the
distinct ratings, with runs of categories that hold a single truth class merged as MRMCaov's
``roc_counts(collapse = TRUE)`` does. MRMCaov maximises with ``trust::trust`` (a trust-region
method on the expected information, stopping when the predicted improvement is below 1.5e-8);
here a Newton method with the exact Hessian in the unconstrained parameters
``(a, log b, c_1, log(c_2 - c_1), ...)``, damped (Levenberg-Marquardt) where the Hessian is not
positive definite or a step does not improve the likelihood, iterates until the Newton decrement
is below 1e-20: the same maximum, reached to machine precision (MRMCaov's fits of VanDyke stop
with gradients of 1e-5 and AUCs 1e-7 to 2e-7 short of it). Where the likelihood has no maximum
because it grows towards the boundary of the model (``b -> 0`` with the last cutoff
``-> inf``, when the highest categories hold positives only and the negatives' tail is empty),
the log parameters let the fit run out geometrically to the limit of the supremum (e.g. AUC
42/44 exactly on a VanDyke jackknife sample where ``trust`` stops after 100 iterations at
0.954579). A fit can start from another fit (:func:`fit_binormal` ``start``): the jackknife
refits start from the fit to all cases.

Degenerate data follow MRMCaov's rule (``binormal_inits``): with a single rating category the
curve is the chance line (``a = 0``, ``b = 1``, AUC 0.5); when every empirical ROC point has
FPR 0 or TPR 1 (perfect separation, no interior point) ``a = inf`` (AUC 1); when every point has
FPR 1 or TPR 0, ``a = -inf`` (AUC 0). MRMCaov then warns, and so does :attr:`BinormalFit.note`,
which also names fits that did not converge (e.g. ``b -> inf`` when a middle category holds
only positives), fits that ran to the boundary (``b`` outside 1e-6..1e6) and fits to two
categories (binary ratings: one ROC point, three parameters, not identified); their values are
the last iterate, as MRMCaov's.

Partial areas (:class:`analysis.partial.PartialArea`): over specificity ``s1`` to ``s2`` the
area under the curve for FPR from ``1 - s2`` to ``1 - s1``,
``int Phi(a + b z) phi(z) dz`` over ``z`` from ``Phi^-1(1 - s2)`` to ``Phi^-1(1 - s1)``; over
sensitivity the same integral with ``(a / b, 1 / b)`` in place of ``(a, b)`` (the curve with
the axes swapped), as MRMCaov's ``auc.binormal_curve``, which evaluates it as a bivariate
normal probability (``mvtnorm::pmvnorm``); so does :func:`bivariate_normal_cdf`, from Owen's
T function.

References
----------
Dorfman DD, Alf E (1969). Maximum-likelihood estimation of parameters of signal-detection
theory and determination of confidence intervals - rating-method data. Journal of Mathematical
Psychology 6(3):487-496. doi:10.1016/0022-2496(69)90019-4
Metz CE, Herman BA, Shen JH (1998). Maximum likelihood estimation of receiver operating
characteristic (ROC) curves from continuously-distributed data. Statistics in Medicine
17(9):1033-1053. doi:10.1002/(SICI)1097-0258(19980515)17:9<1033::AID-SIM784>3.0.CO;2-Z
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri, owens_t

from analysis.partial import PartialArea

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

_PROB_FLOOR = 1e-10  # MRMCaov's binormal_probs(min = 1e-10)
_MAX_ITERATIONS = 200
_B_LIMITS = (1e-6, 1e6)  # beyond these the fit runs to the boundary of the model
_DECREMENT_TOL = 1e-20
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class BinormalFit:
    """A fitted binormal curve.

    Attributes
    ----------
    a, b : float
        The curve ``TPR = Phi(a + b Phi^-1(FPR))`` (``a`` is infinite for a degenerate fit).
    cutoffs : tuple of float
        The latent cutoffs between the (merged) rating categories, lowest first.
    labels : tuple of int
        For each cutoff, the index (into the categories given to :func:`fit_binormal`) of the
        highest category below it: how a later fit on other counts finds its starting cutoffs.
    converged : bool
        Whether the likelihood reached its maximum (always True for a degenerate fit).
    degenerate : str or None
        MRMCaov's reason when the curve was set without fitting (module docstring).
    iterations : int
        Newton iterations used.
    """

    a: float
    b: float
    cutoffs: tuple[float, ...]
    labels: tuple[int, ...]
    converged: bool
    degenerate: str | None = None
    iterations: int = 0

    @property
    def auc(self) -> float:
        """``Phi(a / sqrt(1 + b^2))``."""
        return float(ndtr(self.a / math.sqrt(1.0 + self.b**2)))

    @property
    def note(self) -> str | None:
        """Why this fit needs a reader's attention, or None."""
        if self.degenerate is not None:
            return self.degenerate
        if len(self.cutoffs) < 2:
            return (
                "binormal fit from 2 rating categories: a and b are not identified (one ROC "
                "point), the AUC depends on where the fit stops; use empirical_auc"
            )
        if not self.converged:
            return (
                f"binormal fit did not converge in {self.iterations} iterations "
                "(the maximum likelihood may not exist); the last iterate is used"
            )
        if not _B_LIMITS[0] < self.b < _B_LIMITS[1]:
            return (
                f"binormal fit at the boundary of the model (b = {self.b:.3g}): the likelihood "
                "has no maximum, the curve is the limit of its supremum"
            )
        return None

    def tpr(self, fpr: FloatArray) -> FloatArray:
        """Points on the curve: the TPR at each FPR."""
        with np.errstate(invalid="ignore"):
            z = ndtri(np.asarray(fpr, dtype=np.float64))
            out = ndtr(self.a + self.b * z)
        out = np.where(np.asarray(fpr) <= 0.0, 0.0, np.where(np.asarray(fpr) >= 1.0, 1.0, out))
        return np.asarray(out, dtype=np.float64)

    def area(self, partial: PartialArea | None = None) -> float:
        """The AUC, or the partial area of :class:`analysis.partial.PartialArea` (module notes)."""
        if partial is None:
            return self.auc
        width = partial.max - partial.min
        if math.isinf(self.a):  # the curve runs along the axes: all of the range, or none
            value = width if self.a > 0 else 0.0
        else:
            a, b = self.a, self.b
            if partial.kind == "sensitivity":
                a, b = a / b, 1.0 / b
            lower, upper = ndtri(1.0 - partial.max), ndtri(1.0 - partial.min)
            # int_lower^upper Phi(a + b z) phi(z) dz = P(Z <= z, Y <= a / sqrt(1 + b^2)) between
            # the two z, with Y = (W - b Z) / sqrt(1 + b^2), corr(Z, Y) = -b / sqrt(1 + b^2).
            scale = math.sqrt(1.0 + b * b)
            k, rho = a / scale, -b / scale
            value = bivariate_normal_cdf(upper, k, rho) - bivariate_normal_cdf(lower, k, rho)
        return value / width if partial.normalize else value


def bivariate_normal_cdf(h: float, k: float, rho: float) -> float:
    """``P(X <= h, Y <= k)`` for standard normals with correlation ``rho``.

    Owen (1956): ``Phi(h) / 2 + Phi(k) / 2 - T(h, (k - rho h) / (h s)) - T(k, (h - rho k) /
    (k s)) - beta`` with ``s = sqrt(1 - rho^2)``, Owen's ``T`` (``scipy.special.owens_t``) and
    ``beta = 1/2`` where ``h k < 0`` or ``h k = 0`` with ``h + k < 0``, else 0 (where ``h`` or
    ``k`` is 0 its ``T`` term is ``sign(other) / 4``). Owen DB (1956), Tables for computing
    bivariate normal probabilities, Annals of Mathematical Statistics 27(4):1075-1090,
    doi:10.1214/aoms/1177728074.
    """
    if h == -math.inf or k == -math.inf:
        return 0.0
    if h == math.inf:
        return float(ndtr(k))
    if k == math.inf:
        return float(ndtr(h))
    s = math.sqrt(1.0 - rho * rho)
    if s == 0.0:  # |rho| = 1 in floating point (b beyond 1e8): Y = rho X
        return float(ndtr(min(h, k)) if rho > 0 else max(0.0, ndtr(h) - ndtr(-k)))

    def owen(x: float, other: float) -> float:
        if x == 0.0:
            return math.copysign(0.25, other)
        return float(owens_t(x, (other - rho * x) / (x * s)))

    if h == 0.0 and k == 0.0:
        return 0.25 + math.asin(rho) / (2.0 * math.pi)
    beta = 0.5 if h * k < 0.0 or (h * k == 0.0 and h + k < 0.0) else 0.0
    return float(0.5 * (ndtr(h) + ndtr(k)) - owen(h, k) - owen(k, h) - beta)


def collapse(negatives: FloatArray, positives: FloatArray) -> IntArray:
    """Indices of the categories MRMCaov keeps (``roc_counts(collapse = TRUE)``).

    A category is merged into the next one when it and the next hold no positive case, or it
    and the next hold no negative case; the first and last are always kept. Counts of merged
    categories add to the next kept one. Categories with no case at all must be removed first.
    """
    n = negatives.size
    keep = np.ones(n, dtype=bool)
    if n > 2:
        for counts in (positives, negatives):
            empty = counts == 0
            # R's duplicated() on the cumulative counts: this and the next category are empty.
            keep[1:-1] &= ~(empty[1:-1] & empty[2:])
    return np.flatnonzero(keep)


def _degenerate(negatives: FloatArray, positives: FloatArray) -> float | None:
    """MRMCaov's ``a`` for data without interior ROC points, or None (module docstring)."""
    if negatives.size <= 1:
        return 0.0
    # Empirical points from the highest category down, (0, 0) first and (1, 1) last.
    fp = np.concatenate([[0.0], np.cumsum(negatives[::-1])])
    tp = np.concatenate([[0.0], np.cumsum(positives[::-1])])
    n, m = fp[-1], tp[-1]
    if np.all((fp == 0) | (tp == m)):
        return math.inf
    if np.all((fp == n) | (tp == 0)):
        return -math.inf
    return None


def _initial(negatives: FloatArray, positives: FloatArray) -> FloatArray:
    """Starting values: least squares on the empirical points in normal deviates."""
    n, m = negatives.sum(), positives.sum()
    fp = np.cumsum(negatives[::-1])[:-1][::-1] / n  # FPR above each cutoff, lowest cutoff first
    tp = np.cumsum(positives[::-1])[:-1][::-1] / m
    x, y = ndtri(fp), ndtri(tp)
    finite = np.isfinite(x) & np.isfinite(y)
    a, b = 0.0, 1.0
    if finite.sum() >= 2 and np.ptp(x[finite]) > 0:
        b, a = np.polyfit(x[finite], y[finite], 1)
    if not b > 0.05:
        b = 1.0
    # Cutoffs from both classes' proportions, kept finite and increasing.
    fp = np.clip(fp, 0.5 / n, 1.0 - 0.5 / n)
    tp = np.clip(tp, 0.5 / m, 1.0 - 0.5 / m)
    cutoffs = 0.5 * (-ndtri(fp) + (a - ndtri(tp)) / b)
    cutoffs = _increasing(cutoffs)
    return np.concatenate([[a, b], cutoffs])


def _increasing(cutoffs: FloatArray) -> FloatArray:
    out = np.array(cutoffs, dtype=np.float64)
    for k in range(1, out.size):
        out[k] = max(out[k], out[k - 1] + 1e-3)
    return out


def _probabilities(theta: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """Category probabilities of the negatives and positives, None outside the support."""
    a, b, c = theta[0], theta[1], theta[2:]
    if not (b > 0 and np.all(np.isfinite(theta))):
        return None
    if c.size > 1 and bool(np.any(c[1:] <= c[:-1])):
        return None
    # Phi(-c_k) and Phi(a - b c_k) in one call, each bracketed by 1 and 0: p_l = F_(l-1) - F_l.
    k = c.size
    values = ndtr(np.concatenate([-c, a - b * c]))
    bracket = np.concatenate([[1.0], values[:k], [0.0, 1.0], values[k:], [0.0]])
    probs = np.maximum(bracket[:-1] - bracket[1:], _PROB_FLOOR)
    return probs[: k + 1], probs[k + 2 :]


def _loglik(theta: FloatArray, negatives: FloatArray, positives: FloatArray) -> float:
    """The log likelihood, -inf outside the support."""
    probs = _probabilities(theta)
    if probs is None:
        return -math.inf
    return float(negatives @ np.log(probs[0]) + positives @ np.log(probs[1]))


def _objective(
    theta: FloatArray, negatives: FloatArray, positives: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """Negative log likelihood, its gradient and its Hessian (inf outside the support)."""
    a, b, c = theta[0], theta[1], theta[2:]
    size = theta.size
    probs = _probabilities(theta)
    if probs is None:
        return math.inf, np.zeros(size), np.zeros((size, size))
    p, q = probs
    z = a - b * c
    k = np.arange(c.size)
    phi_c = np.exp(-0.5 * c * c) / _SQRT_2PI
    phi_z = np.exp(-0.5 * z * z) / _SQRT_2PI
    loglik = float(negatives @ np.log(p) + positives @ np.log(q))

    # First derivatives of Phi(-c_k) and Phi(z_k), rows k, columns (a, b, c_1..).
    d_f = np.zeros((c.size, size))
    d_f[k, 2 + k] = -phi_c
    d_t = np.zeros((c.size, size))
    d_t[:, 0] = phi_z
    d_t[:, 1] = -c * phi_z
    d_t[k, 2 + k] = -b * phi_z
    pad = np.zeros((1, size))
    d_p = np.diff(np.concatenate([pad, d_f, pad]), axis=0) * -1.0  # p_l = F_(l-1) - F_l
    d_q = np.diff(np.concatenate([pad, d_t, pad]), axis=0) * -1.0
    r_p, r_q = negatives / p, positives / q
    gradient = r_p @ d_p + r_q @ d_q

    # Second derivatives: sum_k coef_k d2F_k, coef_k = r_(k+1) - r_k, minus the outer products.
    coef_p, coef_q = r_p[1:] - r_p[:-1], r_q[1:] - r_q[:-1]
    zp = z * phi_z * coef_q
    hessian = -(d_p.T @ (d_p * (r_p / p)[:, None])) - d_q.T @ (d_q * (r_q / q)[:, None])
    hessian[0, 0] += -zp.sum()
    hessian[0, 1] += (zp * c).sum()
    hessian[1, 1] += -(zp * c * c).sum()
    hessian[0, 2 + k] += zp * b
    hessian[1, 2 + k] += -phi_z * coef_q - b * c * zp
    hessian[2 + k, 2 + k] += -b * b * zp + c * phi_c * coef_p
    upper = np.triu(hessian, 1)
    hessian = np.triu(hessian) + upper.T
    return -loglik, -gradient, -hessian


def _to_theta(phi: FloatArray) -> FloatArray:
    """``(a, log b, c_1, log(c_2 - c_1), ...)`` -> ``(a, b, c_1, c_2, ...)``."""
    with np.errstate(over="ignore"):  # an infinite b or cutoff is outside the support
        cutoffs = phi[2] + np.concatenate([[0.0], np.cumsum(np.exp(phi[3:]))])
        return np.concatenate([[phi[0], np.exp(phi[1])], cutoffs])


def _to_phi(theta: FloatArray) -> FloatArray:
    return np.concatenate([[theta[0], math.log(theta[1]), theta[2]], np.log(np.diff(theta[2:]))])


def _objective_phi(
    phi: FloatArray, negatives: FloatArray, positives: FloatArray
) -> tuple[float, FloatArray, FloatArray]:
    """:func:`_objective` in the unconstrained parameters of :func:`_to_theta`.

    With ``J = d theta / d phi``: gradient ``J' g``, Hessian ``J' H J`` plus ``g_b b`` at
    ``log b`` and ``exp(delta_j) sum_(k >= j) g_(c_k)`` at each ``delta_j``.
    """
    theta = _to_theta(phi)
    f, g, h = _objective(theta, negatives, positives)
    size = phi.size
    jac = np.zeros((size, size))
    jac[0, 0] = 1.0
    jac[1, 1] = theta[1]
    jac[2:, 2] = 1.0
    steps = np.exp(phi[3:])
    jac[3:, 3:] = np.tril(np.broadcast_to(steps, (steps.size, steps.size)))
    gradient = jac.T @ g
    hessian = jac.T @ h @ jac
    hessian[1, 1] += g[1] * theta[1]
    tail = np.cumsum(g[2:][::-1])[::-1]  # sum over k >= j of the cutoff gradients
    hessian[3:, 3:] += np.diag(steps * tail[1:])
    return f, gradient, hessian


def _newton(
    theta: FloatArray, negatives: FloatArray, positives: FloatArray
) -> tuple[FloatArray, bool, int]:
    """Damped Newton maximisation of the likelihood from ``theta`` (module docstring).

    It runs in the unconstrained parameters ``(a, log b, c_1, log(c_2 - c_1), ...)``, where a
    maximum at the boundary (``b -> 0`` with a cutoff ``-> inf``, when a category of one truth
    class sits at the end) is approached geometrically instead of by a crawl.
    """
    phi = _to_phi(theta)
    f, g, h = _objective_phi(phi, negatives, positives)
    if not (math.isfinite(f) and np.all(np.isfinite(h))):
        return theta, False, 0
    eye = np.eye(phi.size)
    for iteration in range(1, _MAX_ITERATIONS + 1):
        # A full Newton step first; damp it (mu > 0) only where it fails.
        mu, scale = 0.0, 1.0 + float(np.abs(np.diag(h)).max())
        while True:
            try:
                np.linalg.cholesky(h + mu * eye)
                step = np.linalg.solve(h + mu * eye, -g)
            except np.linalg.LinAlgError:
                mu = max(4.0 * mu, 1e-8 * scale)
                if mu > 1e20 * scale:
                    return _to_theta(phi), False, iteration
                continue
            decrement = float(-g @ step)
            if -_loglik(_to_theta(phi + step), negatives, positives) <= f + 1e-12 * (1.0 + abs(f)):
                break
            mu = max(4.0 * mu, 1e-6 * scale)
            if mu > 1e20 * scale:
                return _to_theta(phi), False, iteration
        phi = phi + step
        f, g, h = _objective_phi(phi, negatives, positives)
        if mu == 0.0 and decrement < _DECREMENT_TOL * max(1.0, abs(f)):
            theta = _to_theta(phi)
            return theta, bool(np.all(np.isfinite(theta))), iteration
    return _to_theta(phi), False, _MAX_ITERATIONS


def fit_binormal(
    negatives: FloatArray, positives: FloatArray, *, start: BinormalFit | None = None
) -> BinormalFit:
    """Maximum-likelihood binormal curve of rating-category counts (module docstring).

    Parameters
    ----------
    negatives, positives : ndarray, shape (L,)
        Counts of the negative and positive cases in each rating category, lowest rating
        first. Categories with no case are ignored.
    start : BinormalFit, optional
        A fit of counts over the same categories to start from (its cutoffs are matched by
        :attr:`BinormalFit.labels`); the maximum does not depend on it.

    Raises
    ------
    ValueError
        When a truth class has no case.
    """
    negatives = np.asarray(negatives, dtype=np.float64)
    positives = np.asarray(positives, dtype=np.float64)
    if not negatives.sum() > 0 or not positives.sum() > 0:
        raise ValueError("a binormal fit needs at least one negative and one positive case")
    present = np.flatnonzero((negatives + positives) > 0)
    neg, pos = negatives[present], positives[present]
    a = _degenerate(neg, pos)
    if a is not None:
        auc = {0.0: "0.5", math.inf: "1", -math.inf: "0"}[a]
        reason = (
            f"binormal fit has AUC = {auc} due to lack of interior points "
            "(MRMCaov's rule: the curve is set, not fitted)"
        )
        return BinormalFit(a=a, b=1.0, cutoffs=(), labels=(), converged=True, degenerate=reason)
    kept = collapse(neg, pos)
    bounds = np.concatenate([[0], kept[:-1] + 1])
    neg = np.add.reduceat(neg, bounds)
    pos = np.add.reduceat(pos, bounds)
    labels = present[kept[:-1]]
    cold = _initial(neg, pos)
    theta = cold
    # Only an interior fit is a good start: from a fit at the boundary of the model the
    # iterations can run out to another face of it instead of to an interior maximum.
    if start is not None and start.labels and start.note is None:
        guess = np.interp(labels, start.labels, start.cutoffs)
        if np.all(np.diff(guess) > 0):
            theta = np.concatenate([[start.a, start.b], guess])
    fitted, converged, iterations = _newton(theta, neg, pos)
    if theta is not cold and not (converged and _B_LIMITS[0] < fitted[1] < _B_LIMITS[1]):
        # Not an interior maximum from the given start: keep the better of it and a cold fit.
        again, again_converged, again_iterations = _newton(cold, neg, pos)
        if _loglik(again, neg, pos) > _loglik(fitted, neg, pos) + 1e-9:
            fitted, converged, iterations = again, again_converged, again_iterations
    return BinormalFit(
        a=float(fitted[0]),
        b=float(fitted[1]),
        cutoffs=tuple(float(v) for v in fitted[2:]),
        labels=tuple(int(v) for v in labels),
        converged=converged,
        iterations=iterations,
    )


def fit_binormal_ratings(negatives: FloatArray, positives: FloatArray) -> BinormalFit:
    """:func:`fit_binormal` of two rating vectors, each distinct rating a category."""
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    levels, index = np.unique(np.concatenate([neg, pos]), return_inverse=True)
    counts_neg = np.bincount(index[: neg.size], minlength=levels.size).astype(np.float64)
    counts_pos = np.bincount(index[neg.size :], minlength=levels.size).astype(np.float64)
    return fit_binormal(counts_neg, counts_pos)
