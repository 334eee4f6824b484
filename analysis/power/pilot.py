"""The OR variance components of a pilot study, as the power formulas take them.

From the pilot's figures of merit ``theta_ij`` (two treatments) and their jackknife covariance
over cases (:func:`analysis.mrmc.covariance.metric_and_covariance`, the covariance of
:func:`analysis.mrmc.or_analysis`):

* ``var_error``, ``cov1``, ``cov2``, ``cov3``: the block averages of the covariance matrix, as
  :mod:`analysis.mrmc.obuchowski_rockette` and RJafroc's ``FOMijk2ORVarComp`` (both scale the
  jackknife by ``(n - 1) / n``); for a split-plot pilot ``cov2`` and ``cov3`` average the pairs of
  readers of the same group only, the pairs that share cases;
* ``var_TR = MS_TR - var_error + cov1 + w max(cov2 - cov3, 0)``, RJafroc's estimate (Hillis et al.
  2011 eq. 9), where ``w`` is the share of reader pairs that read the same cases (1 for a
  factorial pilot; in a split-plot pilot the pairs of different groups have zero covariance);
* ``cases_per_reader``: the cases each pilot reader read (``K*`` for a factorial pilot), to which
  the case-dependent components belong.

``metric`` is the figure of merit: the empirical AUC of the ratings, or the sensitivity or
specificity of binary calls (0/1 ratings), whose jackknife runs over the positive (negative)
cases only, as MRMCaov's ``binary_sens`` / ``binary_spec``. Their components scale with the
number of cases as the AUC's do when the pivotal study keeps the pilot's prevalence, which the
power calculation assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.io import MRMCDesign, mrmc_design
from analysis.mrmc.covariance import METRICS, Metric, metric_and_covariance
from analysis.mrmc.obuchowski_rockette import mean_squares

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PowerComponents:
    """OR components of a two-treatment pilot for the power formulas (module docstring).

    ``var_TR`` is the estimate before the power formulas set a negative one to 0; ``design`` is
    ``factorial`` or ``split-plot`` and ``reader_groups`` its number of reader groups;
    ``observed_effect`` is the pilot's difference of reader-averaged figures of merit, first
    treatment minus second (the ``"1 - 2"`` difference of :func:`analysis.mrmc.or_analysis`).
    """

    var_TR: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    cases_per_reader: float
    metric: str
    n_readers: int
    n_cases: int
    n_positive: int
    n_negative: int
    design: str
    reader_groups: int
    treatments: tuple[str, str]
    observed_effect: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "var_TR": self.var_TR,
            "var_TR_used": max(self.var_TR, 0.0),
            "var_error": self.var_error,
            "cov1": self.cov1,
            "cov2": self.cov2,
            "cov3": self.cov3,
            "cases_per_reader": self.cases_per_reader,
        }

    def pilot_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "design": self.design,
            "reader_groups": self.reader_groups,
            "treatments": list(self.treatments),
            "observed_effect": self.observed_effect,
        }


def pilot_components(frame: pd.DataFrame, *, metric: Metric = "empirical_auc") -> PowerComponents:
    """OR components of a pilot given as an MRMC frame (``reader,treatment,case,truth,rating``).

    Raises
    ------
    ValueError
        On invalid input (:func:`analysis.io.mrmc_design`), an unknown metric, a pilot without
        exactly two treatments or with fewer than two readers, a design other than factorial
        (fully crossed) or split-plot, or too few cases of a truth class.
    """
    return pilot_components_design(mrmc_design(frame), metric=metric)


def pilot_components_design(
    design: MRMCDesign, *, metric: Metric = "empirical_auc"
) -> PowerComponents:
    """:func:`pilot_components` on an already validated :class:`analysis.io.MRMCDesign`."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    t, r, K = design.ratings.shape
    if t != 2:
        raise ValueError(
            f"the pilot must have exactly 2 treatments (the power is that of their "
            f"difference), it has {t}"
        )
    if r < 2:
        raise ValueError(f"the pilot needs at least 2 readers, it has {r}")
    split = design.design == "split-plot"
    if design.design != "factorial" and not split:
        raise ValueError(
            f"a pilot of design {design.design} is not supported: give a fully crossed or a "
            "split-plot pilot"
        )
    if design.design == "factorial" and not design.fully_paired:
        raise ValueError(
            f"the pilot has {design.n_missing} missing reads: the power needs a fully crossed "
            "(or split-plot) pilot"
        )
    values, covariance = metric_and_covariance(design, metric, "jackknife")
    ms = mean_squares(values)
    c = covariance.reshape(t, r, t, r)
    # Readers of one group read the same cases: in a factorial pilot, all readers.
    blocks, group = np.unique(design.observed[0], axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    same_group = group[:, None] == group[None, :]
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]
    paired = (same_group & ~np.eye(r, dtype=bool))[None, :, None, :]

    def block_mean(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> float:
        return float(c[np.broadcast_to(mask, c.shape)].mean())

    var_error = block_mean(same_t & same_r)
    cov1 = block_mean(~same_t & same_r)
    # With one reader per group no two readers share a case: cov2 = cov3 = 0 by design.
    cov2 = block_mean(same_t & paired) if paired.any() else 0.0
    cov3 = block_mean(~same_t & paired) if paired.any() else 0.0
    share = float(same_group.sum() - r) / (r * (r - 1))
    var_tr = ms.TR - var_error + cov1 + share * max(cov2 - cov3, 0.0)
    means = values.mean(axis=1)
    return PowerComponents(
        var_TR=var_tr,
        var_error=var_error,
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        cases_per_reader=float(design.observed[0].sum()) / r,
        metric=metric,
        n_readers=r,
        n_cases=K,
        n_positive=design.n_positive,
        n_negative=design.n_negative,
        design=design.design,
        reader_groups=len(blocks),
        treatments=(design.treatments[0], design.treatments[1]),
        observed_effect=float(means[0] - means[1]),
    )
