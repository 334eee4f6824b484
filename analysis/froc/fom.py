"""FROC figures of merit and their case-deleted (jackknife) values, as RJafroc 2.1.3.

With ``K1`` normal and ``K2`` abnormal cases, ``L_k`` lesions on abnormal case ``k`` (``L`` in
all) with weights ``w_kl`` (summing to 1 per case), ``FP_k`` the highest NL rating on case ``k``
(``-inf`` when unmarked), ``LL_kl`` the rating of lesion ``l`` (``-inf`` when unmarked),
``TP_k = max(max_l LL_kl, FP_k)`` the highest rating on an abnormal case, and
``psi(x, y) = 1`` if ``x < y``, ``1/2`` if ``x = y``, 0 otherwise (Chakraborty 2017, ch. 13;
RJafroc ``src/MyFOM.cpp``):

wAFROC
    ``sum_{k1 normal} sum_{k2, l} w_k2l psi(FP_k1, LL_k2l) / (K1 K2)``.
AFROC
    ``sum_{k1 normal} sum_{k2, l} psi(FP_k1, LL_k2l) / (K1 L)``.
wAFROC1, AFROC1
    As wAFROC and AFROC with ``FP`` over all ``K = K1 + K2`` cases (``K`` in place of ``K1``).
HrAuc
    The ROC AUC from the highest rating of each case: ``sum psi(FP_k1, TP_k2) / (K1 K2)``.
HrSe, HrSp
    The fraction of abnormal cases with a mark; one minus the fraction of normal cases with one.
MaxLLF, MaxNLF
    The number of LL marks over ``L``; the number of NL marks on normal cases over ``K1``.

Each double sum is computed once through sorted ratings (``numpy.searchsorted``), which gives
every case's share of it (its placement value); deleting a case removes its share, so the ``K``
jackknife values cost no more than the figure of merit. RJafroc deletes normal cases only for
HrSp and MaxNLF, abnormal cases only for HrSe and MaxLLF, and every case for the others
(``UtilPseudoValues``); :func:`jackknife_cases` says which.

References
----------
Chakraborty DP (2017). Observer Performance Methods for Diagnostic Imaging: Foundations,
Modeling, and Applications with R-Based Examples. CRC Press. doi:10.1201/9781351228190
Chakraborty DP, Zhai X (2016). On the meaning of the weighted alternative free-response
operating characteristic figure of merit. Medical Physics 43(5):2548-2557.
doi:10.1118/1.4947125
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from analysis.froc.data import FrocData

FloatArray = NDArray[np.float64]
Fom = Literal["wAFROC", "AFROC", "HrAuc", "wAFROC1", "AFROC1", "HrSe", "HrSp", "MaxLLF", "MaxNLF"]
FOMS: tuple[Fom, ...] = (
    "wAFROC",
    "AFROC",
    "HrAuc",
    "wAFROC1",
    "AFROC1",
    "HrSe",
    "HrSp",
    "MaxLLF",
    "MaxNLF",
)
JackknifeCases = Literal["all", "normal", "abnormal"]


def check_fom(fom: str) -> Fom:
    """``fom`` if it is one of :data:`FOMS`, else a ValueError listing them."""
    for name in FOMS:
        if fom == name:
            return name
    raise ValueError(f"unknown figure of merit {fom!r}: use one of {', '.join(FOMS)}")


def jackknife_cases(fom: Fom) -> JackknifeCases:
    """The cases RJafroc 2.1.3 deletes one at a time for ``fom`` (``UtilPseudoValues``)."""
    if fom in ("HrSp", "MaxNLF"):
        return "normal"
    if fom in ("HrSe", "MaxLLF"):
        return "abnormal"
    return "all"


@dataclass(frozen=True)
class _Marks:
    """The per-case summaries every figure of merit is built from, for one treatment x reader."""

    fp: FloatArray  # (K,) highest NL rating of each case
    ll: FloatArray  # (n_lesions,) LL ratings of the real lesions, case by case
    weight: FloatArray  # (n_lesions,) their weights
    owner: NDArray[np.int64]  # (n_lesions,) abnormal case (0..K2-1) of each lesion
    tp: FloatArray  # (K2,) highest rating of each abnormal case


def _placements(x: FloatArray, y: FloatArray, weight: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``px_a = sum_b weight_b psi(x_a, y_b)`` and ``py_b = sum_a psi(x_a, y_b)``."""
    xs = np.sort(x)
    below = np.searchsorted(xs, y, side="left")  # x < y
    upto = np.searchsorted(xs, y, side="right")  # x <= y
    py = below + 0.5 * (upto - below)
    order = np.argsort(y, kind="stable")
    ys = y[order]
    cum = np.concatenate(([0.0], np.cumsum(weight[order])))
    left = np.searchsorted(ys, x, side="left")
    right = np.searchsorted(ys, x, side="right")
    above = cum[-1] - cum[right]  # y > x
    ties = cum[right] - cum[left]
    return above + 0.5 * ties, py.astype(np.float64)


def _check(data: FrocData, fom: Fom) -> None:
    if data.n_normal == 0 and fom not in ("AFROC1", "wAFROC1"):
        # RJafroc 2.1.3 UtilFigureOfMerit refuses these too.
        raise ValueError(f"{fom} needs normal cases; with none use wAFROC1 or AFROC1")
    if data.n_abnormal < 1:
        raise ValueError("FROC figures of merit need abnormal cases")


def _lesion_layout(data: FrocData) -> tuple[NDArray[np.bool_], NDArray[np.int64], FloatArray]:
    real = np.isfinite(data.lesion_weights)
    owner = np.nonzero(real)[0].astype(np.int64)
    return real, owner, data.lesion_weights[real]


def _marks(data: FrocData, i: int, j: int) -> _Marks:
    real, owner, weight = _lesion_layout(data)
    fp = data.nl[i, j].max(axis=-1)
    ll_ij = data.ll[i, j]
    tp = np.maximum(ll_ij.max(axis=-1), fp[data.n_normal :])
    return _Marks(fp=fp, ll=ll_ij[real], weight=weight, owner=owner, tp=tp)


def _fom_and_jackknife(data: FrocData, fom: Fom, i: int, j: int) -> tuple[float, FloatArray]:
    """The figure of merit of treatment ``i``, reader ``j`` and its case-deleted values."""
    k1, k2 = data.n_normal, data.n_abnormal
    m = _marks(data, i, j)
    owner, weight = m.owner, m.weight
    per_case = data.lesions_per_case.astype(np.float64)
    n_les = float(per_case.sum())
    if fom in ("wAFROC", "AFROC", "wAFROC1", "AFROC1", "HrAuc"):
        weighted = fom in ("wAFROC", "wAFROC1")
        if fom == "HrAuc":
            y, wy, owner_y = m.tp, np.ones(k2), np.arange(k2)
        else:
            y, wy, owner_y = m.ll, (weight if weighted else np.ones_like(weight)), owner
        all_cases = fom in ("wAFROC1", "AFROC1")
        x = m.fp if all_cases else m.fp[:k1]
        px, py = _placements(x, y, wy)
        total = float(px.sum())
        # Each abnormal case's share through its lesions (or its highest rating for HrAuc).
        by_case = np.bincount(owner_y, weights=wy * py, minlength=k2)
        # The "lesion" denominator: K2 for the weighted FOMs and HrAuc, L for AFROC(1).
        units = np.full(k2, 1.0) if weighted or fom == "HrAuc" else per_case
        n_units = float(units.sum())
        n_x = float(x.size)
        value = total / (n_x * n_units)
        jk_normal = (total - px[:k1]) / ((n_x - 1.0) * n_units)
        if all_cases:
            # Deleting abnormal case c removes its FP row and its lesions; their common term
            # psi(FP_c, LL_c.) was subtracted twice.
            own = np.bincount(owner_y, weights=wy * _pairwise(m.fp[k1:][owner_y], y), minlength=k2)
            removed = px[k1:] + by_case - own
            jk_abnormal = (total - removed) / ((n_x - 1.0) * (n_units - units))
        else:
            jk_abnormal = (total - by_case) / (n_x * (n_units - units))
        return value, np.concatenate((jk_normal, jk_abnormal))
    if fom == "HrSe":
        marked = np.isfinite(m.tp).astype(np.float64)
        return float(marked.mean()), (marked.sum() - marked) / (k2 - 1.0)
    if fom == "HrSp":
        marked = np.isfinite(m.fp[:k1]).astype(np.float64)
        return 1.0 - float(marked.mean()), 1.0 - (marked.sum() - marked) / (k1 - 1.0)
    if fom == "MaxLLF":
        hits = np.bincount(owner, weights=np.isfinite(m.ll).astype(np.float64), minlength=k2)
        return float(hits.sum() / n_les), (hits.sum() - hits) / (n_les - per_case)
    # MaxNLF
    counts = np.isfinite(data.nl[i, j, :k1]).sum(axis=-1).astype(np.float64)
    return float(counts.sum() / k1), (counts.sum() - counts) / (k1 - 1.0)


def _pairwise(x: FloatArray, y: FloatArray) -> FloatArray:
    """``psi(x_a, y_a)`` element by element."""
    return np.asarray(np.where(x < y, 1.0, np.where(x == y, 0.5, 0.0)), dtype=np.float64)


def figure_of_merit(data: FrocData, fom: str) -> FloatArray:
    """The ``(I, J)`` figure of merit of every treatment and reader (RJafroc ``UtilFigureOfMerit``).

    Definitions in the module docstring. Raises ValueError for an unknown ``fom`` or a dataset
    without the cases it needs.
    """
    name = check_fom(fom)
    _check(data, name)
    n_t, n_r = len(data.treatments), len(data.readers)
    out = np.empty((n_t, n_r))
    for i in range(n_t):
        for j in range(n_r):
            out[i, j] = _fom_and_jackknife(data, name, i, j)[0]
    return out


def jackknife_values(data: FrocData, fom: str) -> tuple[FloatArray, FloatArray]:
    """The figure of merit ``(I, J)`` and its case-deleted values ``(I, J, n)``.

    ``n`` counts the cases :func:`jackknife_cases` deletes (``K``, ``K1`` or ``K2``), normal cases
    first; value ``[i, j, k]`` is the figure of merit without the ``k``-th of them, as RJafroc's
    ``UtilPseudoValues(...)$jkFomValues``.
    """
    name = check_fom(fom)
    _check(data, name)
    n_t, n_r = len(data.treatments), len(data.readers)
    cases = jackknife_cases(name)
    k1, k2 = data.n_normal, data.n_abnormal
    n = {"all": k1 + k2, "normal": k1, "abnormal": k2}[cases]
    if n < 2:
        raise ValueError(f"the jackknife of {name} needs at least 2 {cases} cases, found {n}")
    # Deleting the only normal (abnormal) case would leave the figure of merit undefined.
    if cases == "all" and (k2 < 2 or (k1 == 1 and name not in ("wAFROC1", "AFROC1"))):
        raise ValueError(
            f"the jackknife of {name} needs at least 2 normal and 2 abnormal cases, "
            f"found {k1} and {k2}"
        )
    values = np.empty((n_t, n_r))
    jk = np.empty((n_t, n_r, n))
    for i in range(n_t):
        for j in range(n_r):
            values[i, j], jk[i, j] = _fom_and_jackknife(data, name, i, j)
    return values, jk


def pseudovalues(values: FloatArray, jk: FloatArray) -> FloatArray:
    """Jackknife pseudovalues ``n theta - (n - 1) theta(-k)``, centred as RJafroc.

    RJafroc 2.1.3 (``UtilPseudoValues``) shifts each treatment x reader's pseudovalues so that
    their mean equals the figure of merit. The shift is zero for wAFROC, HrAuc, HrSe, HrSp and
    MaxNLF, and not for AFROC, AFROC1, wAFROC1 and MaxLLF (on ``dataset05`` up to 0.0013), whose
    denominators change with the kind of case deleted.
    """
    n = jk.shape[-1]
    y = n * values[..., None] - (n - 1.0) * jk
    return np.asarray(y + (values - y.mean(axis=-1))[..., None], dtype=np.float64)


def jackknife_covariance(jk: FloatArray) -> FloatArray:
    """``(I J) x (I J)`` covariance ``(n - 1)/n sum_k (theta(-k) - mean)(theta'(-k) - mean)``.

    RJafroc's ``FOMijk2ORVarComp``: R's ``cov()`` times ``(n - 1)^2 / n``. Index ``i J + j``.
    """
    n_t, n_r, n = jk.shape
    d = jk.reshape(n_t * n_r, n)
    d = d - d.mean(axis=1, keepdims=True)
    return np.asarray((n - 1.0) / n * (d @ d.T), dtype=np.float64)
