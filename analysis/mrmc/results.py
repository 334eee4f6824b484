"""Frozen result dataclasses of the Obuchowski-Rockette analysis and their JSON shape."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.mrmc.noninferiority import NonInferiority
    from analysis.partial import PartialArea


def _json_float(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a degenerate value (e.g. zero variance) becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def json_record(record: Any) -> dict[str, Any]:
    """A result dataclass as a JSON-ready dict (non-finite numbers become null)."""
    return {
        key: _json_float(value) if isinstance(value, float) else value
        for key, value in asdict(record).items()
    }


@dataclass(frozen=True)
class VarComponents:
    """OR variance components (untruncated).

    ``var_R``, ``var_TR``: reader and treatment x reader variances; ``cov1``, ``cov2``,
    ``cov3``: error covariances of two metric values on the same cases read by the same reader
    in different treatments, different readers in the same treatment, and different readers in
    different treatments; ``var_error``: error variance of one metric value.
    """

    var_R: float
    var_TR: float
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


@dataclass(frozen=True, kw_only=True)
class ReaderAveragedResult:
    """Study size and the metric per reader and reader-averaged per treatment (OR, iMRMC)."""

    alpha: float
    n_readers: int
    n_cases: int
    n_positive: int
    n_negative: int
    treatment_value: Mapping[str, float]
    reader_value: tuple[ReaderValue, ...]

    def size_line(self) -> str:
        return (
            f"{self.n_readers} readers, {self.n_cases} cases "
            f"({self.n_positive} positive, {self.n_negative} negative)"
        )

    def reader_table(self, last_row: str) -> list[str]:
        """Rows: the treatment names, each reader's values ("-" where none), ``last_row``."""
        lines = [f"{'reader':<12}" + "".join(f"{name:>12}" for name in self.treatment_value)]
        table: dict[str, dict[str, float]] = {}
        for value in self.reader_value:
            table.setdefault(value.reader, {})[value.treatment] = value.value
        for reader, row in table.items():
            lines.append(
                f"{reader:<12}"
                + "".join(f"{_fmt(row.get(name)):>12}" for name in self.treatment_value)
            )
        lines.append(
            f"{last_row:<12}" + "".join(f"{_fmt(v):>12}" for v in self.treatment_value.values())
        )
        return lines


@dataclass(frozen=True)
class MeanSquares:
    """Treatment, reader and treatment x reader mean squares of the metric values."""

    T: float
    R: float
    TR: float


@dataclass(frozen=True)
class ORResult(ReaderAveragedResult):
    """Result of :func:`analysis.mrmc.or_analysis`; :meth:`to_dict` is the DESIGN.md JSON."""

    metric: str
    cov: str
    factors: str
    var_components: VarComponents | None
    global_test: GlobalTest
    differences: tuple[Difference, ...]
    single_treatment: Mapping[str, SingleTreatment]
    mean_squares: MeanSquares
    design: str = "factorial"
    notes: tuple[str, ...] = ()
    non_inferiority: NonInferiority | None = None
    adjust: str = "none"
    p_adjusted: tuple[float, ...] | None = None
    bootstrap: Mapping[str, int] | None = None
    partial: PartialArea | None = None

    @property
    def metric_label(self) -> str:
        """The metric, with its partial area when there is one."""
        return self.metric if self.partial is None else f"{self.metric} ({self.partial.label})"

    def to_dict(self) -> dict[str, Any]:
        """The ``python -m analysis mrmc --json`` object (non-finite numbers become null).

        ``non_inferiority`` and ``adjust`` (with ``p_adjusted`` in each difference) are present
        only when a margin or an adjustment was asked for (:mod:`analysis.mrmc.noninferiority`),
        ``bootstrap`` (``n_boot``, ``seed``) only with the bootstrap covariance, ``partial``
        (``kind``, ``min``, ``max``, ``normalize``) only for a partial area.
        """
        return {
            "metric": self.metric,
            "cov": self.cov,
            "factors": self.factors,
            "design": self.design,
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "treatment_value": {
                key: _json_float(value) for key, value in self.treatment_value.items()
            },
            "reader_value": [json_record(value) for value in self.reader_value],
            "var_components": (
                None if self.var_components is None else json_record(self.var_components)
            ),
            "global_test": json_record(self.global_test),
            "differences": difference_records(self.differences, self.p_adjusted),
            "single_treatment": {
                key: json_record(value) for key, value in self.single_treatment.items()
            },
            "notes": list(self.notes),
        } | (
            inference_option_keys(self.non_inferiority, self.adjust, self.p_adjusted)
            | ({} if self.bootstrap is None else {"bootstrap": dict(self.bootstrap)})
            | ({} if self.partial is None else {"partial": asdict(self.partial)})
        )

    def to_text(self) -> str:
        """A readable report: values, variance components, test, differences, intervals."""
        lines = [
            "Obuchowski-Rockette MRMC analysis, Hillis degrees of freedom",
            f"metric {self.metric_label}, covariance {self.cov}, factors {self.factors}, "
            f"design {self.design}"
            + (
                ""
                if self.bootstrap is None
                else f", {self.bootstrap['n_boot']} replicates (seed {self.bootstrap['seed']})"
            ),
            self.size_line(),
            "",
            f"{self.metric_label} by reader (rows) and treatment (columns)",
            *self.reader_table("mean"),
        ]
        if self.var_components is not None:
            lines += ["", "variance components (untruncated)"]
            lines += [
                f"  {name:<10}{_fmt(value, 8):>12}"
                for name, value in asdict(self.var_components).items()
            ]
        test = self.global_test
        df = f"{_fmt(test.df1, 0)}" + ("" if test.df2 is None else f", {_fmt(test.df2, 2)}")
        lines += [
            "",
            f"global test: {test.statistic_name} = {_fmt(test.statistic, 4)}, df = ({df}), "
            f"p = {_fmt(test.p_value, 4)}",
        ]
        lines += inference_lines(self.differences, self.single_treatment, self.alpha)
        lines += inference_option_lines(self.differences, self.non_inferiority, self.p_adjusted)
        if self.notes:
            lines += ["", "notes"] + [f"  - {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def inference_lines(
    differences: tuple[Difference, ...], single: Mapping[str, SingleTreatment], alpha: float
) -> list[str]:
    """The differences and single-treatment intervals as table rows (OR and DBM reports)."""
    level = f"{100 * (1 - alpha):g}%"
    lines = [
        "",
        f"{'difference':<16}{'estimate':>10}{'SE':>10}{'df':>8}{level + ' CI':>24}{'p':>9}",
    ]
    for d in differences:
        lines.append(
            f"{d.pair:<16}{_fmt(d.estimate):>10}{_fmt(d.se):>10}{_fmt(d.df, 2):>8}"
            f"{_ci(d.ci_lower, d.ci_upper):>24}{_fmt(d.p_value, 4):>9}"
        )
    lines += ["", f"{'treatment':<16}{'estimate':>10}{'SE':>10}{'df':>8}{level + ' CI':>24}"]
    for name, s in single.items():
        lines.append(
            f"{name:<16}{_fmt(s.estimate):>10}{_fmt(s.se):>10}{_fmt(s.df, 2):>8}"
            f"{_ci(s.ci_lower, s.ci_upper):>24}"
        )
    return lines


def difference_records(
    differences: tuple[Difference, ...], p_adjusted: tuple[float, ...] | None
) -> list[dict[str, Any]]:
    """The differences as JSON records, each with its ``p_adjusted`` when adjusted."""
    records = [json_record(difference) for difference in differences]
    if p_adjusted is not None:
        for record, p in zip(records, p_adjusted, strict=True):
            record["p_adjusted"] = _json_float(p)
    return records


def inference_option_keys(
    non_inferiority: NonInferiority | None, adjust: str, p_adjusted: tuple[float, ...] | None
) -> dict[str, Any]:
    """The JSON keys of the non-inferiority tests and the adjusted p-values, when asked for."""
    keys: dict[str, Any] = {}
    if p_adjusted is not None:
        keys["adjust"] = adjust
    if non_inferiority is not None:
        keys["non_inferiority"] = non_inferiority.to_dict()
    return keys


def inference_option_lines(
    differences: tuple[Difference, ...],
    non_inferiority: NonInferiority | None,
    p_adjusted: tuple[float, ...] | None,
) -> list[str]:
    """Report rows of the adjusted p-values and the non-inferiority tests, when asked for."""
    lines: list[str] = []
    if p_adjusted is not None:
        lines += ["", f"{'difference':<16}{'p':>9}{'p (Holm)':>11}"]
        lines += [
            f"{d.pair:<16}{_fmt(d.p_value, 4):>9}{_fmt(p, 4):>11}"
            for d, p in zip(differences, p_adjusted, strict=True)
        ]
    if non_inferiority is not None:
        lines += non_inferiority.to_lines()
    return lines


def _fmt(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _ci(lower: float, upper: float) -> str:
    return f"({_fmt(lower)}, {_fmt(upper)})"
