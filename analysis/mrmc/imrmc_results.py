"""Frozen result dataclasses of the iMRMC U-statistic analysis and their JSON shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.mrmc.results import ReaderAveragedResult, _ci, _fmt, _json_float, json_record


@dataclass(frozen=True)
class IMRMCEstimate:
    """An estimate with its variance, BDG df and interval (not clipped).

    ``se`` is None for a negative variance; ``df``, ``ci_lower`` and ``ci_upper`` are None
    where iMRMC gives NA (negative variance) or they are undefined (zero variance).
    """

    estimate: float
    variance: float
    se: float | None
    df: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class IMRMCSingle(IMRMCEstimate):
    """Reader-averaged AUC of one treatment (an :class:`IMRMCEstimate`)."""


@dataclass(frozen=True)
class IMRMCDifference(IMRMCEstimate):
    """One pairwise difference ``a - b`` of reader-averaged AUCs, with its t test on the df."""

    p_value: float | None
    pair: str = field(kw_only=True)


@dataclass(frozen=True)
class IMRMCResult(ReaderAveragedResult):
    """Result of :func:`analysis.mrmc.imrmc_analysis`; :meth:`to_dict` is the DESIGN.md JSON.

    ``single_treatment`` and ``differences`` use the U-statistic (unbiased) variance, iMRMC's
    ``Ustat`` table; ``mle_single_treatment`` and ``mle_differences`` its ``MLEstat`` table.
    ``reader_value`` holds each reader's AUC over the pairs it read in a treatment.
    """

    single_treatment: Mapping[str, IMRMCSingle]
    differences: tuple[IMRMCDifference, ...]
    mle_single_treatment: Mapping[str, IMRMCSingle]
    mle_differences: tuple[IMRMCDifference, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The ``python -m analysis imrmc --json`` object (non-finite numbers become null)."""
        data: dict[str, Any] = {
            "n_readers": self.n_readers,
            "n_cases": self.n_cases,
            "treatment_value": {
                key: _json_float(value) for key, value in self.treatment_value.items()
            },
            "single_treatment": {
                key: json_record(value) for key, value in self.single_treatment.items()
            },
            # the pair first, as in the DESIGN.md object
            "differences": [{"pair": d.pair, **json_record(d)} for d in self.differences],
        }
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    def to_text(self) -> str:
        """A readable report: reader AUCs, treatment AUCs with intervals, differences, notes."""
        level = f"{100 * (1 - self.alpha):g}%"
        lines = [
            "iMRMC U-statistic MRMC analysis of the empirical AUC (iMRMC 2.1.2 doIMRMC)",
            "variance: U-statistic (unbiased); df: BDG; intervals and p-values use t with",
            "floor(df) degrees of freedom (normal when df > 50), as iMRMC",
            self.size_line(),
            "",
            "AUC by reader (rows) and treatment (columns), over the pairs each reader read",
            *self.reader_table("pooled"),
            "",
            f"{'treatment':<16}{'AUC':>10}{'variance':>12}{'SE':>10}{'df':>8}{level + ' CI':>24}",
        ]
        for name, s in self.single_treatment.items():
            lines.append(
                f"{name:<16}{_fmt(s.estimate):>10}{_fmt(s.variance, 8):>12}{_fmt(s.se):>10}"
                f"{_fmt(s.df, 2):>8}{_interval(s.ci_lower, s.ci_upper):>24}"
            )
        if self.differences:
            lines += [
                "",
                f"{'difference':<16}{'estimate':>10}{'variance':>12}{'SE':>10}{'df':>8}"
                f"{level + ' CI':>24}{'p':>9}",
            ]
            for d in self.differences:
                lines.append(
                    f"{d.pair:<16}{_fmt(d.estimate):>10}{_fmt(d.variance, 8):>12}"
                    f"{_fmt(d.se):>10}{_fmt(d.df, 2):>8}{_interval(d.ci_lower, d.ci_upper):>24}"
                    f"{_fmt(d.p_value, 4):>9}"
                )
        if self.notes:
            lines += ["", "notes:"] + [f"  - {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def _interval(lower: float | None, upper: float | None) -> str:
    if lower is None or upper is None:
        return "-"
    return _ci(lower, upper)
