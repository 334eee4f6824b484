"""Frozen result dataclasses of the Obuchowski-Rockette analysis and their JSON shape."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


def _json_float(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a degenerate value (e.g. zero variance) becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class VarComponents:
    """OR variance components (untruncated).

    ``var_R``, ``var_TR``: reader and treatment x reader variances; ``cov1``, ``cov2``,
    ``cov3``: error covariances of two metric values on the same cases read by the same reader
    in different treatments, different readers in the same treatment, and different readers in
    different treatments; ``var_error``: error variance of one metric value.
    """

    var_R: float  # noqa: N815 - the names of the JSON contract
    var_TR: float  # noqa: N815
    cov1: float
    cov2: float
    cov3: float
    var_error: float


@dataclass(frozen=True)
class GlobalTest:
    """Test of equal treatment means: ``F`` (RRRC, RRFC) or ``X2`` (FRRC, df2 None)."""

    statistic_name: str
    statistic: float
    df1: float
    df2: float | None
    p_value: float


@dataclass(frozen=True)
class Difference:
    """One pairwise treatment difference ``a - b`` (df None: normal-based, FRRC)."""

    pair: str
    estimate: float
    se: float
    df: float | None
    ci_lower: float
    ci_upper: float
    p_value: float


@dataclass(frozen=True)
class SingleTreatment:
    """Reader-averaged metric of one treatment with its interval, clipped to [0, 1]."""

    estimate: float
    se: float
    df: float | None
    ci_lower: float
    ci_upper: float


@dataclass(frozen=True)
class ReaderValue:
    """The metric of one reader under one treatment."""

    treatment: str
    reader: str
    value: float


@dataclass(frozen=True)
class MeanSquares:
    """Treatment, reader and treatment x reader mean squares of the metric values."""

    T: float
    R: float
    TR: float


@dataclass(frozen=True)
class ORResult:
    """Result of :func:`analysis.mrmc.or_analysis`; :meth:`to_dict` is the DESIGN.md JSON."""

    metric: str
    cov: str
    factors: str
    alpha: float
    n_readers: int
    n_cases: int
    n_positive: int
    n_negative: int
    treatment_value: Mapping[str, float]
    reader_value: tuple[ReaderValue, ...]
    var_components: VarComponents | None
    global_test: GlobalTest
    differences: tuple[Difference, ...]
    single_treatment: Mapping[str, SingleTreatment]
    mean_squares: MeanSquares

    def to_dict(self) -> dict[str, Any]:
        """The ``python -m analysis mrmc --json`` object (non-finite numbers become null)."""

        def clean(record: Any) -> dict[str, Any]:
            return {
                key: _json_float(value) if isinstance(value, float) else value
                for key, value in asdict(record).items()
            }

        return {
            "metric": self.metric,
            "cov": self.cov,
            "factors": self.factors,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "treatment_value": {
                key: _json_float(value) for key, value in self.treatment_value.items()
            },
            "reader_value": [clean(value) for value in self.reader_value],
            "var_components": (None if self.var_components is None else clean(self.var_components)),
            "global_test": clean(self.global_test),
            "differences": [clean(difference) for difference in self.differences],
            "single_treatment": {key: clean(value) for key, value in self.single_treatment.items()},
        }
