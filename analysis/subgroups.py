"""Results by reader qualification: specialty, experience band and role.

The readers of a study differ in training and experience, and a regulator asks whether the AI's
effect holds across them (FDA, *Clinical Performance Assessment: Considerations for
Computer-Assisted Detection Devices Applied to Radiology Images and Radiology Device Data in
Premarket Notification (510(k)) Submissions*, 2020: report reader qualifications and results by
reader subgroup). The long reads frame carries each reader's qualifications in
:data:`READER_COLUMNS` (the same value on every row of a reader); without them there are no
subgroups, and the report says so.

Subgroups, one grouping at a time, of the readers the complete-case analysis includes:

* **specialty**: the stated specialty, as written (trimmed);
* **experience**: years of experience in bands :data:`EXPERIENCE_BANDS`: ``< 5`` (0-4),
  ``5-10`` (5 to 10 inclusive), ``> 10`` (11 or more);
* **role**: attending, fellow, resident, other.

A reader without a stated value is in the subgroup ``not stated``. Per subgroup and finding type,
with the estimands and intervals of the main results:

* per arm, the **reader-averaged empirical AUC** of the confidence ratings with its
  Obuchowski-Rockette single-treatment interval (:func:`analysis.mrmc.or_analysis`, RRRC,
  jackknife, Hillis df), and the **sensitivity** and **specificity** of the calls as
  :func:`analysis.missed.missed_findings` gives them (reader-averaged with the OR interval when
  the subgroup's reads are fully crossed, else pooled with a case-clustered interval; each value
  names its estimand and interval);
* with two readers or more, the **OR MRMC analysis** restricted to the subgroup's readers (its
  ``to_dict()``: the difference of the arms, its interval and p-value);
* with one reader there is no reader variance to estimate: the note "too few readers for MRMC",
  and per arm that reader's AUC with a DeLong interval (the reader fixed, cases random;
  DeLong, DeLong & Clarke-Pearson 1988, doi:10.2307/2531595).

Subgroup analyses are descriptive: the study is powered for its main comparison, not for these,
and no multiplicity adjustment is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special

from analysis._common import jsonable_float as _num
from analysis.longreads import ARMS, READER_COLUMNS, text_ids
from analysis.report import mrmc_frame

if TYPE_CHECKING:
    from analysis.missed import ArmRate
    from analysis.mrmc import ORResult

NOT_STATED = "not stated"
TOO_FEW = "too few readers for MRMC"
ABSENT = (
    "reader subgroups absent: the reads carry no reader qualifications (columns "
    + ", ".join(READER_COLUMNS)
    + ")"
)
NONE_STATED = (
    "reader subgroups absent: no included reader has a qualification recorded (specialty, "
    "years of experience, role)"
)
# (label, lowest year, highest year) of each band, both inclusive.
EXPERIENCE_BANDS: tuple[tuple[str, int, float], ...] = (
    ("< 5 years", 0, 4),
    ("5-10 years", 5, 10),
    ("> 10 years", 11, math.inf),
)
BANDS_STATED = "experience bands: < 5 years (0-4), 5-10 years (5 to 10 inclusive), > 10 years"
GROUPINGS: tuple[tuple[str, str], ...] = (
    ("specialty", "reader_specialty"),
    ("experience", "reader_years_experience"),
    ("role", "reader_role"),
)
DELONG_METHOD = "DeLong interval (one reader: reader fixed, cases random)"
OR_AUC_METHOD = "OR single-treatment interval (RRRC, jackknife, Hillis df)"


def _exact_json(value: Any) -> Any:
    """``value`` with each float of 2**53 or more (a near-infinite df of a subgroup with almost
    no reader variance) as the integer its shortest text names.

    A JSON store keeps such a number as decimal text and reads it back as that integer, which
    differs from the float in its last bits; stored this way, the platform's stored analysis and
    the command line's printed one are the same object.
    """
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 2.0**53:
        return int(Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: _exact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact_json(v) for v in value]
    return value


@dataclass(frozen=True)
class ArmValue:
    """A metric in one arm: the estimate, its interval, what it estimates and how."""

    arm: str
    estimate: float
    ci_lower: float
    ci_upper: float
    estimand: str
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "estimate": _num(self.estimate),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
            "estimand": self.estimand,
            "method": self.method,
        }


@dataclass(frozen=True)
class FindingSubgroup:
    """One finding type in one subgroup."""

    finding: str
    auc: tuple[ArmValue, ...]
    sensitivity: tuple[ArmValue, ...]
    specificity: tuple[ArmValue, ...]
    mrmc: ORResult | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "auc": [x.to_dict() for x in self.auc],
            "sensitivity": [x.to_dict() for x in self.sensitivity],
            "specificity": [x.to_dict() for x in self.specificity],
            "mrmc": None if self.mrmc is None else _exact_json(self.mrmc.to_dict()),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Subgroup:
    """The readers of one level of a grouping (``experience`` = ``5-10 years``, say)."""

    grouping: str
    level: str
    readers: tuple[str, ...]
    findings: tuple[FindingSubgroup, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "grouping": self.grouping,
            "level": self.level,
            "n_readers": len(self.readers),
            "readers": list(self.readers),
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class SubgroupsResult:
    """Every subgroup of every grouping, and each included reader's qualifications."""

    readers: tuple[dict[str, Any], ...]
    subgroups: tuple[Subgroup, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "bands": BANDS_STATED,
            "groupings": [g for g, _ in GROUPINGS],
            "readers": [dict(r) for r in self.readers],
            "subgroups": [s.to_dict() for s in self.subgroups],
            "notes": list(self.notes),
        }


def experience_band(years: float | None) -> str:
    """The band of :data:`EXPERIENCE_BANDS` holding ``years`` (``not stated`` when missing)."""
    if years is None or (isinstance(years, float) and math.isnan(years)):
        return NOT_STATED
    whole = math.floor(years)
    return next(label for label, low, high in EXPERIENCE_BANDS if low <= whole <= high)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


def reader_qualifications(long: pd.DataFrame) -> dict[str, dict[str, Any]] | None:
    """Each reader's ``specialty``, ``years_experience`` and ``role`` from the long frame.

    ``None`` when the frame has none of :data:`READER_COLUMNS` (a file written without them).
    A missing text value is an empty string, missing years ``None``.

    Raises
    ------
    ValueError
        A reader with two different values of a qualification, or years of experience that are
        not a whole number of 0 or more; the message names the reader and the value.
    """
    if not any(c in long.columns for c in READER_COLUMNS):
        return None
    reader = text_ids(long["reader"]).astype(str).str.strip()
    rows: dict[str, dict[str, Any]] = {str(r): {} for r in pd.unique(reader)}
    for column in READER_COLUMNS:
        given = long[column] if column in long.columns else pd.Series("", index=long.index)
        pairs = pd.DataFrame({"reader": reader, "value": given.map(_text)}).drop_duplicates()
        twice = pairs["reader"].duplicated(keep=False)
        if twice.any():
            who = str(pairs.loc[twice, "reader"].iloc[0])
            said = sorted(pairs.loc[pairs["reader"] == who, "value"].astype(str))
            raise ValueError(f"reader {who} has more than one {column}: {', '.join(said)}")
        for r, v in zip(pairs["reader"], pairs["value"], strict=True):
            rows[str(r)][column.removeprefix("reader_")] = v
    for r, row in rows.items():
        row["years_experience"] = _years(r, row["years_experience"])
    return rows


def _years(reader: str, text: str) -> int | None:
    if text == "":
        return None
    number = pd.to_numeric(text, errors="coerce")
    if pd.isna(number) or number < 0 or number != math.floor(number):
        raise ValueError(
            f"reader {reader}: reader_years_experience must be a whole number of 0 or more, "
            f"got {text!r}"
        )
    return int(number)


def _level(grouping: str, row: dict[str, Any]) -> str:
    if grouping == "experience":
        return experience_band(row["years_experience"])
    return str(row[grouping]) or NOT_STATED


def _flip(rate: ArmRate) -> ArmValue:
    """The complement of a missed or false-positive rate: sensitivity or specificity."""
    return ArmValue(
        rate.arm, 1 - rate.rate, 1 - rate.ci_upper, 1 - rate.ci_lower, rate.estimand, rate.method
    )


def _one_reader_auc(frame: pd.DataFrame, alpha: float) -> tuple[ArmValue, ...]:
    from analysis.roc import delong

    z = -float(special.ndtri(alpha / 2))
    out = []
    for arm in ARMS:
        g = frame[frame["treatment"] == arm]
        pos = g.loc[g["truth"] == 1, "rating"].to_numpy(np.float64)
        neg = g.loc[g["truth"] == 0, "rating"].to_numpy(np.float64)
        if pos.size < 2 or neg.size < 2:
            continue
        res = delong(pos, neg)
        auc, se = float(res.auc[0]), float(res.se[0])
        out.append(
            ArmValue(
                arm,
                auc,
                max(0.0, auc - z * se),
                min(1.0, auc + z * se),
                "single reader",
                DELONG_METHOD,
            )
        )
    return tuple(out)


def _finding(sub: pd.DataFrame, finding: str, n_readers: int, alpha: float) -> FindingSubgroup:
    from analysis.missed import missed_findings
    from analysis.mrmc import or_analysis

    frame = mrmc_frame(sub, finding)
    notes: list[str] = []
    mrmc: ORResult | None = None
    auc: tuple[ArmValue, ...] = ()
    if n_readers < 2:  # the subgroup says "too few readers for MRMC"
        auc = _one_reader_auc(frame, alpha)
    else:
        try:
            mrmc = or_analysis(frame, alpha=alpha)
        except ValueError as error:
            notes.append(f"MRMC analysis skipped: {error}")
        else:
            auc = tuple(
                ArmValue(
                    arm, st.estimate, st.ci_lower, st.ci_upper, "reader-averaged", OR_AUC_METHOD
                )
                for arm, st in mrmc.single_treatment.items()
            )
    rows = sub[sub["finding"] == finding]
    try:
        missed = missed_findings(rows, significant=[], alpha=alpha).findings[0]
    except (ValueError, IndexError) as error:
        notes.append(f"sensitivity and specificity skipped: {error}")
        sens: tuple[ArmValue, ...] = ()
        spec: tuple[ArmValue, ...] = ()
    else:
        sens = tuple(_flip(x) for x in missed.missed.arms if x.n)
        spec = tuple(_flip(x) for x in missed.false_positive.arms if x.n)
    return FindingSubgroup(finding, auc, sens, spec, mrmc, tuple(notes))


def reader_subgroups(
    long: pd.DataFrame,
    *,
    readers: Sequence[str],
    findings: Sequence[str],
    alpha: float = 0.05,
) -> SubgroupsResult:
    """Subgroup results of ``readers`` (the complete-case readers) by their qualifications.

    Parameters
    ----------
    long
        The validated long frame of the included readers' reads, with :data:`READER_COLUMNS`.
    readers
        The readers the subgroups are made of.
    findings
        The finding types, in the report's order.
    alpha
        Two-sided level of every interval.

    Returns
    -------
    SubgroupsResult
        See the module docstring. Without subgroups (no qualification columns, none stated, no
        complete reader) it has none, and a note that says why.
    """
    table = reader_qualifications(long)
    if table is None:
        return SubgroupsResult(readers=(), subgroups=(), notes=(ABSENT,))
    chosen = {r: table[r] for r in sorted(readers) if r in table}
    stated = [r for r, row in chosen.items() if row["specialty"] or row["role"]
              or row["years_experience"] is not None]  # fmt: skip
    if chosen and not stated:
        return SubgroupsResult(readers=_described(chosen), subgroups=(), notes=(NONE_STATED,))
    ids = text_ids(long["reader"]).astype(str).str.strip()
    subgroups, notes = [], [BANDS_STATED]
    for grouping, _ in GROUPINGS:
        levels = {r: _level(grouping, row) for r, row in chosen.items()}
        for level in sorted(set(levels.values()), key=partial(_order, grouping)):
            members = tuple(r for r, at in levels.items() if at == level)
            sub = long[ids.isin(members).to_numpy()]
            found = tuple(_finding(sub, f, len(members), alpha) for f in findings)
            said = (TOO_FEW,) if len(members) < 2 else ()
            subgroups.append(Subgroup(grouping, level, members, found, said))
    if not chosen:
        notes.append("no reader has finished both arms: no subgroups")
    return SubgroupsResult(
        readers=_described(chosen), subgroups=tuple(subgroups), notes=tuple(notes)
    )


def _described(chosen: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"reader": r, **row, "experience_band": experience_band(row["years_experience"])}
        for r, row in chosen.items()
    )


def _order(grouping: str, level: str) -> tuple[bool, int, str]:
    """Levels in their natural order (bands by years, others by name), ``not stated`` last."""
    labels = [label for label, _, _ in EXPERIENCE_BANDS] if grouping == "experience" else []
    return (level == NOT_STATED, labels.index(level) if level in labels else 0, level)
