"""REML of a linear mixed model with a crossed case effect and a reader intercept and slope.

Model, in lme4's notation with a 0/1 covariate ``a``::

    y ~ X + (1 | case) + (1 + a || reader)
    y = X b + Z_case c + Z_reader u + Z_reader,a v + e,
    c ~ N(0, s_c^2 I), u ~ N(0, s_u^2 I), v ~ N(0, s_a^2 I), e ~ N(0, s_e^2 I).

The REML deviance is evaluated through Henderson's mixed-model equations in lme4's relative
parametrisation ``lambda = (s_c, s_u, s_a) / s_e`` (Bates et al. 2015), so a variance of zero is
an ordinary point. The case block of ``Z'Z`` is diagonal: the case effects are absorbed by a
Schur complement whose cross-products are grouped once by the number of observations per case,
so an evaluation costs ``O(groups x (2 readers + p)^2)`` plus a Cholesky factor of that size,
whatever the number of observations. The deviance depends on the relative standard deviations
only through their squares, so Powell's method searches them on the whole line and the result
is folded back to ``[0, inf)``. Satterthwaite's df of a fixed effect follow lmerTest
(Kuznetsova et al. 2017): the variance of the estimate and its gradient in
``(lambda, s_e)``, and their asymptotic covariance, twice the inverse Hessian of the deviance.

References
----------
Henderson CR (1975). Best linear unbiased estimation and prediction under a selection model.
Biometrics 31(2):423-447. doi:10.2307/2529430
Bates D, Maechler M, Bolker B, Walker S (2015). Fitting linear mixed-effects models using lme4.
Journal of Statistical Software 67(1). doi:10.18637/jss.v067.i01
Kuznetsova A, Brockhoff PB, Christensen RHB (2017). lmerTest package: tests in linear mixed
effects models. Journal of Statistical Software 82(13). doi:10.18637/jss.v082.i13
Satterthwaite FE (1946). An approximate distribution of estimates of variance components.
Biometrics Bulletin 2(6):110-114. doi:10.2307/3002019
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, optimize

FloatArray = NDArray[np.float64]


class CrossedReml:
    """REML of ``y = X b + Z_case c + Z_reader u + Z_reader,arm a + e``, the case block absorbed.

    Parameters
    ----------
    y, x
        Response (n) and fixed-effects design (n x p, full column rank).
    case, reader
        Integer codes ``0..K-1`` and ``0..J-1`` of each observation.
    assisted
        0/1 arm indicator, the covariate of the reader random slope.
    with_case
        False leaves the case effect out (its relative SD is held at 0).
    """

    block_cells = 2_000_000  # cases x columns of G built at once, bounds the memory

    def __init__(
        self,
        y: FloatArray,
        x: FloatArray,
        case: NDArray[np.intp],
        reader: NDArray[np.intp],
        assisted: FloatArray,
        *,
        with_case: bool = True,
    ) -> None:
        n, p = x.shape
        n_readers = int(reader.max()) + 1
        n_cases = int(case.max()) + 1
        f = np.column_stack([x, y])
        q = p + 1
        j2 = 2 * n_readers
        m = j2 + q
        # R'R for R = [Z_reader, Z_reader,arm, X, y]; the reader columns are indicators, so
        # their products are per-reader counts and sums
        n_all = np.bincount(reader, minlength=n_readers).astype(np.float64)
        n_ai = np.bincount(reader, weights=assisted, minlength=n_readers)
        rr = np.zeros((m, m))
        idx = np.arange(n_readers)
        rr[idx, idx] = n_all
        rr[idx + n_readers, idx + n_readers] = n_ai
        rr[idx, idx + n_readers] = rr[idx + n_readers, idx] = n_ai
        for col in range(q):
            rr[:n_readers, j2 + col] = np.bincount(reader, f[:, col], n_readers)
            rr[n_readers:j2, j2 + col] = np.bincount(reader, f[:, col] * assisted, n_readers)
        rr[j2:, :j2] = rr[:j2, j2:].T
        rr[j2:, j2:] = f.T @ f
        # G = Z_case' R, grouped by the number of reads per case so that G' diag(w(n_k)) G is
        # a short sum of fixed matrices; G is built densely a block of cases at a time
        n_case = np.bincount(case, minlength=n_cases)
        counts, inverse = np.unique(n_case, return_inverse=True)
        prods = np.zeros((len(counts), m, m)) if with_case else np.zeros((0, m, m))
        if with_case:
            block = max(1, self.block_cells // m)
            order, starts = None, np.zeros(0, dtype=np.intp)
            if n_cases > block:
                order = np.argsort(case, kind="stable")
                starts = np.searchsorted(case[order], np.arange(n_cases + 1))
            for c0 in range(0, n_cases, block):
                c1 = min(n_cases, c0 + block)
                rows = slice(None) if order is None else order[starts[c0] : starts[c1]]
                at = (case[rows] - c0) * m
                size = (c1 - c0) * m
                g = np.bincount(at + reader[rows], minlength=size).astype(np.float64)
                g += np.bincount(at + n_readers + reader[rows], assisted[rows], size)
                for col in range(q):
                    g += np.bincount(at + j2 + col, f[rows, col], size)
                g = g.reshape(c1 - c0, m)
                part = inverse[c0:c1]
                for i in np.unique(part):
                    gi = g[part == i]
                    prods[i] += gi.T @ gi
        self.groups: list[tuple[float, int, FloatArray]] = [
            (float(c), int((inverse == i).sum()), prods[i])
            for i, c in enumerate(counts)
            if with_case
        ]
        self.rr = rr
        self.scale = np.ones(m)
        self.reader_diagonal = np.arange(j2) * (m + 1)
        self.n, self.p, self.m = n, p, m
        self.n_readers = n_readers
        self.with_case = with_case

    def factor(self, lam: FloatArray) -> tuple[FloatArray, float]:
        """Lower Cholesky factor of the absorbed system and ``log|I + L_case' Z'Z L_case|``."""
        lc, lr, la = (float(v) for v in lam)
        mat = self.rr.copy()
        logdet_case = 0.0
        if self.with_case and lc != 0.0:
            lc2 = lc * lc
            for c, count, prod in self.groups:
                mat -= (lc2 / (lc2 * c + 1.0)) * prod
                logdet_case += count * math.log1p(lc2 * c)
        j = self.n_readers
        scale = self.scale
        scale[:j] = lr
        scale[j : 2 * j] = la
        mat *= scale[:, None]
        mat *= scale[None, :]
        mat.flat[self.reader_diagonal] += 1.0
        return np.linalg.cholesky(mat), logdet_case

    def pieces(self, lam: FloatArray) -> tuple[float, float, FloatArray]:
        """``log|C|`` (random and fixed blocks), the penalised RSS, and the Cholesky factor."""
        chol, logdet_case = self.factor(lam)
        diag = np.diag(chol)
        logdet = logdet_case + 2.0 * float(np.log(diag[:-1]).sum())
        return logdet, float(diag[-1] ** 2), chol

    def profiled_deviance(self, lam: FloatArray) -> float:
        """REML criterion profiled over the residual variance (lme4's ``REMLcrit``)."""
        try:
            logdet, rss, _ = self.pieces(lam)
        except np.linalg.LinAlgError:
            return math.inf
        if rss <= 0.0:
            return math.inf
        dof = self.n - self.p
        return float(logdet + dof * (1.0 + math.log(2.0 * math.pi * rss / dof)))

    def deviance(self, phi: FloatArray) -> float:
        """REML deviance at ``phi = (lambda_case, lambda_reader, lambda_arm, sigma)``."""
        logdet, rss, _ = self.pieces(phi[:3])
        s2 = float(phi[3]) ** 2
        return float(logdet + (self.n - self.p) * math.log(2.0 * math.pi * s2) + rss / s2)

    def fixed(self, lam: FloatArray) -> tuple[FloatArray, FloatArray]:
        """GLS estimate of ``b`` and ``(X' V^-1 X)^-1`` in units of the residual variance."""
        _, _, chol = self.pieces(lam)
        j2 = 2 * self.n_readers
        l_xx = chol[j2:-1, j2:-1]
        l_yx = chol[-1, j2:-1]
        beta = linalg.solve_triangular(l_xx.T, l_yx, lower=False)
        inv = linalg.cho_solve((l_xx, True), np.eye(self.p))
        return beta, inv

    def _search_deviance(self, lam: FloatArray) -> float:
        if not self.with_case:
            lam = np.r_[0.0, lam[1:]]
        return self.profiled_deviance(lam)

    def fit(self) -> FloatArray:
        """REML estimates of the relative SDs ``(s_c, s_u, s_a) / s_e``."""
        # the deviance depends on each relative SD through its square, so it is searched on
        # the whole line from lme4's start (Powell, derivative-free, more precise here than
        # L-BFGS-B with finite-difference gradients) and folded back to [0, inf)
        best = optimize.minimize(
            self._search_deviance,
            np.ones(3),
            method="Powell",
            options={"xtol": 1e-7, "ftol": 1e-13, "maxfev": 20000},
        )
        lam = np.abs(np.asarray(best.x, dtype=np.float64))
        if not self.with_case:
            lam[0] = 0.0
        # snap to the boundary when zero is no worse: the search stops a hair above it
        for i in range(3):
            if 0.0 < lam[i] < 1e-2:
                trial = lam.copy()
                trial[i] = 0.0
                if self.profiled_deviance(trial) <= self.profiled_deviance(lam) + 1e-10:
                    lam = trial
        return lam


def _hessian(fun: Any, x0: FloatArray, steps: FloatArray) -> FloatArray:
    """Central-difference Hessian with Richardson extrapolation (steps h and h/2)."""

    def once(h: FloatArray) -> FloatArray:
        k = x0.size
        out = np.empty((k, k))
        f0 = fun(x0)
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            out[i, i] = (fun(x0 + ei) - 2.0 * f0 + fun(x0 - ei)) / h[i] ** 2
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                out[i, j] = out[j, i] = (
                    fun(x0 + ei + ej) - fun(x0 + ei - ej) - fun(x0 - ei + ej) + fun(x0 - ei - ej)
                ) / (4.0 * h[i] * h[j])
        return out

    return (4.0 * once(steps / 2.0) - once(steps)) / 3.0


def _gradient(fun: Any, x0: FloatArray, steps: FloatArray) -> FloatArray:
    """Central-difference gradient with Richardson extrapolation."""

    def once(h: FloatArray) -> FloatArray:
        out = np.empty(x0.size)
        for i in range(x0.size):
            e = np.zeros(x0.size)
            e[i] = h[i]
            out[i] = (fun(x0 + e) - fun(x0 - e)) / (2.0 * h[i])
        return out

    return (4.0 * once(steps / 2.0) - once(steps)) / 3.0


def satterthwaite_df(model: CrossedReml, lam: FloatArray, sigma: float, k: int) -> float:
    """Satterthwaite df of the ``k``-th fixed effect, as lmerTest's ``contest1D``."""
    phi: FloatArray = np.append(lam, sigma).astype(np.float64)
    steps = 1e-3 * np.maximum(np.abs(phi), 0.05)
    # without a case term its parameter is fixed at 0: leave it out of both derivatives
    free = np.arange(4) if model.with_case else np.arange(1, 4)

    def full(sub: FloatArray) -> FloatArray:
        out = phi.copy()
        out[free] = sub
        return out

    def var_k(sub: FloatArray) -> float:
        ph = full(sub)
        return float(ph[3] ** 2 * model.fixed(ph[:3])[1][k, k])

    hess = _hessian(lambda s: model.deviance(full(s)), phi[free], steps[free])
    grad = _gradient(var_k, phi[free], steps[free])
    cov = 2.0 * linalg.pinvh(hess)
    denom = float(grad @ cov @ grad)
    v = var_k(phi[free])
    return 2.0 * v * v / denom if denom > 0 else math.inf
