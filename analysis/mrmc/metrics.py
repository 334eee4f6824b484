"""Figures of merit of reader x treatment reads, and their values under case resampling.

A figure of merit is a :class:`MetricSpec`: the metric (the empirical AUC, the binormal AUC,
the binormal likelihood-ratio (PROPROC) AUC, sensitivity or specificity, all as MRMCaov 0.3.0
defines them) and, for an AUC, an optional
partial area (:class:`analysis.partial.PartialArea`). :func:`replicate_values` is the one place
that computes a figure of merit from a design: it scores every reader x treatment on the cases
it read, each case counted as many times as a row of ``counts`` says (a row of ones is the data
itself, a row with one zero a jackknife deletion, a row of bootstrap multiplicities a bootstrap
replicate). :func:`metric_values`, the jackknife (:func:`jackknife_values`) and the bootstrap
(:func:`spec_metric_and_covariance`) all call it.

Each reader x treatment's rating categories are the distinct ratings it gave; a count vector
gives the counts of positive and negative cases per category, from which:

- the empirical AUC (whole or partial) is the trapezoidal area of the empirical curve through
  those counts (:func:`analysis.partial.empirical_partial_auc`);
- the binormal AUC (whole or partial) comes from the maximum-likelihood binormal curve of those
  counts (:mod:`analysis.binormal`); replicates start from the fit to all cases, and count
  vectors that repeat (deleting any of the cases of one category and truth class gives the
  same counts) are fitted once;
- the binormal likelihood-ratio (PROPROC) AUC (``binormalLR_auc``, whole or partial) likewise
  comes from the maximum-likelihood proper binormal curve of those counts
  (:mod:`analysis.proproc`), with repeated count vectors fitted once; each replicate is fitted
  from the fit to all cases and from MRMCaov's starts, and the higher likelihood kept (its
  likelihood can have several maxima);
- sensitivity and specificity are the proportions of positive cases called 1 and of negative
  cases called 0.

The plain empirical AUC, sensitivity and specificity keep their closed-form jackknife and
vectorised bootstrap (:mod:`analysis.mrmc.covariance`, :mod:`analysis.mrmc.bootstrap`), which
compute the same numbers faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from analysis.binormal import BinormalFit, fit_binormal
from analysis.io import MRMCDesign
from analysis.mrmc.bootstrap import bootstrap_metric_and_covariance, case_counts
from analysis.mrmc.covariance import (
    METRICS,
    CovMethod,
    Metric,
    _check_binary,
    check_case_counts,
    jackknife_covariance,
    metric_and_covariance,
)
from analysis.partial import PartialArea, empirical_partial_auc
from analysis.proproc import ProprocFit, fit_proproc

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
FigureOfMerit = Literal[
    "empirical_auc", "binormal_auc", "binormalLR_auc", "sensitivity", "specificity"
]
FIGURES_OF_MERIT: tuple[FigureOfMerit, ...] = (
    "empirical_auc",
    "binormal_auc",
    "binormalLR_auc",
    "sensitivity",
    "specificity",
)
AUC_METRICS = ("empirical_auc", "binormal_auc", "binormalLR_auc")


@dataclass(frozen=True)
class MetricSpec:
    """A figure of merit: the metric and, for an AUC, the part of the curve it covers."""

    metric: str
    partial: PartialArea | None = None

    def __post_init__(self) -> None:
        if self.metric not in FIGURES_OF_MERIT:
            raise ValueError(
                f"unknown metric {self.metric!r}: choose one of {', '.join(FIGURES_OF_MERIT)}"
            )
        if self.partial is not None and self.metric not in AUC_METRICS:
            raise ValueError(
                f"a partial area needs an AUC metric ({', '.join(AUC_METRICS)}), not {self.metric}"
            )

    @property
    def builtin(self) -> Metric | None:
        """The metric, when its closed-form jackknife and vectorised bootstrap apply."""
        if self.partial is None and self.metric in METRICS:
            return self.metric
        return None

    @property
    def label(self) -> str:
        """E.g. ``binormal_auc, partial AUC, specificity 0.8-1``."""
        return self.metric if self.partial is None else f"{self.metric}, {self.partial.label}"


@dataclass(frozen=True)
class ReplicateValues:
    """Figure-of-merit values ``(B, t r)`` of count vectors, and notes on their fits."""

    values: FloatArray
    notes: tuple[str, ...] = ()


def _group_name(design: MRMCDesign, g: int) -> str:
    r = len(design.readers)
    return f"reader {design.readers[g % r]}, treatment {design.treatments[g // r]}"


def _categories(ratings: FloatArray, truth: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """One-hot rating categories ``(n, L)`` (distinct ratings, lowest first) of the negative and
    of the positive cases (rows of the other class are zero)."""
    _, category = np.unique(ratings, return_inverse=True)
    onehot = np.zeros((ratings.size, int(category.max()) + 1))
    onehot[np.arange(ratings.size), category.ravel()] = 1.0
    return onehot * ~truth[:, None], onehot * truth[:, None]


Fit = TypeVar("Fit")


def _fitted_values(
    negatives: FloatArray,
    positives: FloatArray,
    name: str,
    *,
    curve: str,
    score: Callable[[FloatArray, FloatArray, Fit | None], tuple[Fit, float, str | None, bool]],
) -> tuple[FloatArray, list[str]]:
    """A fitted curve's (partial) AUC of each count row: the first row is fitted first and
    starts the others; identical rows are fitted once. NaN where a row has no case of a class.
    The first row's note is named; failed refits are counted in one note."""
    rows = np.concatenate([negatives, positives], axis=1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    size = negatives.shape[1]
    start: Fit | None = None
    first = int(inverse.ravel()[0])
    order = [first] + [u for u in range(unique.shape[0]) if u != first]
    values = np.full(unique.shape[0], np.nan)
    notes: list[str] = []
    failed = 0
    for u in order:
        neg, pos = unique[u, :size], unique[u, size:]
        if not (neg.sum() > 0 and pos.sum() > 0):
            continue
        fit, value, note, did_fail = score(neg, pos, start)
        if u == first:
            start = fit
            if note is not None:
                notes.append(f"{name}: {note}")
        elif did_fail:
            failed += 1
        values[u] = value
    if failed:
        notes.append(
            f"{name}: {curve} fit did not converge on {failed} of {unique.shape[0] - 1} "
            "resampled case sets (their last iterates are used)"
        )
    return values[inverse.ravel()], notes


def _binormal_values(
    negatives: FloatArray, positives: FloatArray, partial: PartialArea | None, name: str
) -> tuple[FloatArray, list[str]]:
    """Binormal (partial) AUC of each count row (:mod:`analysis.binormal`)."""

    def score(
        neg: FloatArray, pos: FloatArray, start: BinormalFit | None
    ) -> tuple[BinormalFit, float, str | None, bool]:
        fit = fit_binormal(neg, pos, start=start)
        return fit, fit.area(partial), fit.note, not fit.converged

    return _fitted_values(negatives, positives, name, curve="binormal", score=score)


def _as_ratings(counts: FloatArray) -> FloatArray:
    """The ratings (category indices, lowest 0) that a row of whole category counts stands for."""
    whole = np.rint(counts)
    if np.any(np.abs(counts - whole) > 1e-9) or np.any(whole < 0):
        raise ValueError("a PROPROC fit needs whole, non-negative case counts")
    return np.repeat(np.arange(counts.size, dtype=np.float64), whole.astype(np.intp))


def _proproc_values(
    negatives: FloatArray, positives: FloatArray, partial: PartialArea | None, name: str
) -> tuple[FloatArray, list[str]]:
    """PROPROC (partial) AUC of each count row (:mod:`analysis.proproc`); refits are also fitted
    from MRMCaov's starts (the higher likelihood is kept). Rows without interior ROC points get
    MRMCaov's AUC (1 or 0.5) unfitted."""

    def score(
        neg: FloatArray, pos: FloatArray, start: ProprocFit | None
    ) -> tuple[ProprocFit, float, str | None, bool]:
        ratings = _as_ratings(neg), _as_ratings(pos)
        fit = fit_proproc(*ratings, start=start)
        if start is not None:
            # The likelihood can have several maxima (e.g. a ridge towards d_a = 0 beside an
            # interior peak): a search from the full-data fit can settle on a lower one than
            # MRMCaov's own starts reach, so those are searched too and the higher is kept.
            cold = fit_proproc(*ratings)
            if cold.loglik > fit.loglik:
                fit = cold
        note = None if fit.converged else f"PROPROC fit: {fit.message}"
        # A row without interior points is MRMCaov's rule, not a failed fit.
        return fit, fit.auc(partial), note, not fit.converged and bool(fit.cutoffs)

    return _fitted_values(negatives, positives, name, curve="PROPROC", score=score)


def _empirical_values(
    negatives: FloatArray, positives: FloatArray, partial: PartialArea | None, name: str
) -> tuple[FloatArray, list[str]]:
    return empirical_partial_auc(negatives, positives, partial), []


#: The AUC metrics: each scores rows of category counts ``(B, L)`` (negatives, positives, the
#: partial area, the reader x treatment's name for notes) and returns values ``(B,)`` and
#: notes. A fitted curve (binormal, PROPROC) fits each row's counts; a metric added here and to
#: :data:`FIGURES_OF_MERIT` gets the jackknife, the bootstrap and the OR analysis.
AUC_SCORERS: dict[str, Callable[..., tuple[FloatArray, list[str]]]] = {
    "empirical_auc": _empirical_values,
    "binormal_auc": _binormal_values,
    "binormalLR_auc": _proproc_values,
}


def _auc_values(
    spec: MetricSpec, negatives: FloatArray, positives: FloatArray, name: str
) -> tuple[FloatArray, list[str]]:
    """The (partial) AUC of ``spec`` of each row of category counts ``(B, L)``."""
    return AUC_SCORERS[spec.metric](negatives, positives, spec.partial, name)


def replicate_values(design: MRMCDesign, spec: MetricSpec, counts: FloatArray) -> ReplicateValues:
    """Figure of merit of every reader x treatment under case multiplicities ``counts``.

    Parameters
    ----------
    design : MRMCDesign
        The reads.
    spec : MetricSpec
        The figure of merit.
    counts : ndarray, shape (B, K)
        How many times each case counts in each of ``B`` replicates. The first row is the
        reference: fitted curves (binormal, PROPROC) of the other rows start from its fits, and
        the notes name its degenerate or non-converged fits (the others are counted). Pass the
        data (ones) first.

    Returns
    -------
    ReplicateValues
        ``values`` ``(B, t r)`` (index ``i r + j``), NaN where a replicate leaves a reader x
        treatment without a case of a class its metric needs; ``notes`` name the reader x
        treatments whose fitted curve is degenerate or did not converge.
    """
    t, r, _ = design.ratings.shape
    out = np.empty((counts.shape[0], t * r), dtype=np.float64)
    notes: list[str] = []
    for g in range(t * r):
        i, j = divmod(g, r)
        read = np.flatnonzero(design.observed[i, j])
        ratings, truth, weight = design.ratings[i, j, read], design.truth[read], counts[:, read]
        if spec.metric in ("sensitivity", "specificity"):
            _check_binary(ratings, spec.metric)  # type: ignore[arg-type]
            used = truth if spec.metric == "sensitivity" else ~truth
            hits = np.where(used, ratings if spec.metric == "sensitivity" else 1.0 - ratings, 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, g] = (weight @ hits) / (weight @ used.astype(np.float64))
            continue
        neg_onehot, pos_onehot = _categories(ratings, truth)
        out[:, g], group_notes = _auc_values(
            spec, weight @ neg_onehot, weight @ pos_onehot, _group_name(design, g)
        )
        notes += group_notes
    return ReplicateValues(out, tuple(notes))


def metric_values(design: MRMCDesign, spec: MetricSpec) -> FloatArray:
    """The ``t x r`` figure-of-merit values of a design (:func:`replicate_values` of the data)."""
    t, r, K = design.ratings.shape
    return replicate_values(design, spec, np.ones((1, K))).values.reshape(t, r)


def jackknife_values(
    design: MRMCDesign, spec: MetricSpec
) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
    """Values ``(t r,)``, leave-one-case-out values ``(t r, K)`` and notes of an AUC spec.

    Every case is deleted in turn (an AUC uses both truth classes): the category counts of the
    data less that case, scored by the same function as :func:`replicate_values`. A case that a
    reader did not read under a treatment leaves that value as it is.
    """
    if spec.metric not in AUC_METRICS:
        raise ValueError(f"the leave-one-out values of {spec.metric} are in closed form")
    t, r, K = design.ratings.shape
    values = np.empty(t * r, dtype=np.float64)
    loo = np.empty((t * r, K), dtype=np.float64)
    notes: list[str] = []
    for g in range(t * r):
        i, j = divmod(g, r)
        read = np.flatnonzero(design.observed[i, j])
        neg_onehot, pos_onehot = _categories(design.ratings[i, j, read], design.truth[read])
        negatives = np.concatenate([neg_onehot.sum(axis=0, keepdims=True), neg_onehot])
        positives = np.concatenate([pos_onehot.sum(axis=0, keepdims=True), pos_onehot])
        negatives[1:] = negatives[0] - negatives[1:]
        positives[1:] = positives[0] - positives[1:]
        scored, group_notes = _auc_values(spec, negatives, positives, _group_name(design, g))
        notes += group_notes
        values[g] = scored[0]
        loo[g] = scored[0]
        loo[g, read] = scored[1:]
    return values, loo, tuple(notes)


def spec_metric_and_covariance(
    design: MRMCDesign,
    spec: MetricSpec,
    cov: CovMethod | Literal["bootstrap"],
    *,
    n_boot: int,
    seed: int,
) -> tuple[FloatArray, FloatArray, tuple[str, ...]]:
    """Values ``(t, r)``, their covariance over cases ``(t r, t r)`` and notes.

    Raises
    ------
    ValueError
        For DeLong or unbiased covariance of a metric other than the whole empirical AUC
        (MRMCaov's rule), or the errors of the estimators.
    """
    t, r, K = design.ratings.shape
    if cov in ("delong", "unbiased") and spec.partial is not None:
        raise ValueError(
            f"the {cov} covariance method is not available for a partial AUC: "
            "use --cov jackknife or bootstrap"
        )
    builtin = spec.builtin
    if builtin is not None:
        if cov == "bootstrap":
            values, covariance = bootstrap_metric_and_covariance(
                design, builtin, n_boot=n_boot, seed=seed
            )
        else:
            values, covariance = metric_and_covariance(design, builtin, cov)
        return values, covariance, ()
    if cov in ("delong", "unbiased"):
        raise ValueError(f"the {cov} covariance method needs metric empirical_auc")
    check_case_counts(design, "empirical_auc")
    if cov == "jackknife":
        values, loo, jackknife_notes = jackknife_values(design, spec)
        return values.reshape(t, r), jackknife_covariance(loo), jackknife_notes
    notes: list[str] = []

    def score(resampled: MRMCDesign, indices: IntArray) -> FloatArray:
        # The data first: its fits start the replicates' and its notes come first.
        counts = np.concatenate([np.ones((1, K)), case_counts(indices, K)])
        result = replicate_values(resampled, spec, counts)
        notes.extend(result.notes)
        return result.values[1:]

    values, covariance = bootstrap_metric_and_covariance(
        design, spec.metric, n_boot=n_boot, seed=seed, replicate_values=score
    )
    return values, covariance, tuple(dict.fromkeys(notes))
