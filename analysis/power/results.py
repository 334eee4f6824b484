"""Frozen results of the power and sample-size calculations and their JSON and text shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.mrmc.results import _json_float

if TYPE_CHECKING:
    from analysis.power.pilot import PowerComponents


@dataclass(frozen=True)
class PowerResult:
    """Power of the OR test for one pivotal study (:func:`analysis.power.power_given`).

    ``f_critical`` is the critical value of the test statistic: F(1, df2) for RRRC and RRFC,
    chi-square(1) for FRRC (``statistic_name`` "X2", ``df2`` None).
    """

    power: float
    ncp: float
    df2: float | None
    f_critical: float
    statistic_name: str
    readers: int
    cases: int
    reader_groups: int
    effect: float
    alpha: float
    factors: str
    components: PowerComponents

    def to_dict(self) -> dict[str, Any]:
        """The ``python -m analysis power --json`` object (non-finite numbers become null)."""
        return {
            "power": _json_float(self.power),
            "df2": _json_float(self.df2),
            "ncp": _json_float(self.ncp),
            "f_critical": _json_float(self.f_critical),
            "statistic_name": self.statistic_name,
            "readers": self.readers,
            "cases": self.cases,
            "reader_groups": self.reader_groups,
            "effect": self.effect,
            "alpha": self.alpha,
            "factors": self.factors,
            "metric": self.components.metric,
            "components": {k: _json_float(v) for k, v in self.components.to_dict().items()},
            "pilot": self.components.pilot_dict(),
        }

    def to_text(self) -> str:
        c = self.components
        design = (
            "factorial"
            if self.reader_groups == 1
            else f"split-plot, {self.reader_groups} reader groups of "
            f"{self.readers // self.reader_groups} readers and "
            f"{self.cases // self.reader_groups} cases"
        )
        df2 = "" if self.df2 is None else f", df2 = {self.df2:.3f}"
        lines = [
            "Power of the OR test of two treatments (Hillis, Obuchowski and Berbaum 2011)",
            f"pivotal study: {self.readers} readers, {self.cases} cases ({design})",
            f"effect {self.effect:g} in {c.metric}, alpha {self.alpha:g}, factors {self.factors}",
            "",
            f"power = {self.power:.4f}",
            f"noncentrality = {self.ncp:.4f}{df2}, critical {self.statistic_name} = "
            f"{self.f_critical:.4f}",
            "",
            _pilot_line(c),
            *_component_lines(c),
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SampleSizeResult:
    """The smallest number of cases reaching a target power (:func:`cases_for_power`)."""

    cases: int
    target_power: float
    max_cases: int
    at_cases: PowerResult

    @property
    def power(self) -> float:
        return self.at_cases.power

    def to_dict(self) -> dict[str, Any]:
        """The ``python -m analysis power --target-power --json`` object."""
        return {
            "cases": self.cases,
            "power": _json_float(self.power),
            "target_power": self.target_power,
            "max_cases": self.max_cases,
            **{k: v for k, v in self.at_cases.to_dict().items() if k not in ("power", "cases")},
        }

    def to_text(self) -> str:
        p = self.at_cases
        lines = [
            "Sample size of the OR test of two treatments (Hillis, Obuchowski and Berbaum 2011)",
            f"{p.readers} readers, effect {p.effect:g} in {p.components.metric}, "
            f"alpha {p.alpha:g}, factors {p.factors}"
            + ("" if p.reader_groups == 1 else f", {p.reader_groups} reader groups"),
            "",
            f"cases = {self.cases} (power {self.power:.4f}, target {self.target_power:g})",
            "",
            _pilot_line(p.components),
            *_component_lines(p.components),
        ]
        return "\n".join(lines) + "\n"


def _pilot_line(c: PowerComponents) -> str:
    return (
        f"pilot: {c.n_readers} readers, {c.n_cases} cases ({c.n_positive} positive, "
        f"{c.n_negative} negative), {c.design}, observed effect {c.observed_effect:.6f}"
    )


def _component_lines(c: PowerComponents) -> list[str]:
    lines = [f"OR components (per pilot reader's cases, {c.cases_per_reader:g} cases)"]
    for name, value in c.to_dict().items():
        if name != "cases_per_reader":
            lines.append(f"  {name:<12}{value:>14.8f}")
    return lines
