"""Reading behaviour: how much of each case the readers looked at, for how long, with what AI.

From the long frame's telemetry columns (:data:`analysis.longreads.TELEMETRY_COLUMNS`, one set
of values per read, repeated on the read's finding rows), :func:`reading_behaviour` describes,
per arm, over every read that has telemetry:

* the fraction of the case's slices shown (``slices_viewed / slices_total``: mean, median, IQR);
* the seconds the case's images were on screen (``series_time_s``: counted once however many
  viewports showed them, so at most the read's duration; median, IQR);
* in an arm that shows the AI, the share of reads with the heatmap overlay on screen at some
  time (a pooled proportion with a Wilson interval on the case-clustered effective sample size,
  :func:`analysis.case_clustered.clustered_proportion`), the median seconds it was on among
  those reads, and the median seconds from opening to the first sight of the AI's output.

and an automation-bias look (Goddard, Roudsari & Wyatt 2012): the readers' accuracy (the call
equals the truth), per finding row, on the rows where the AI's call at its operating threshold
was right and where it was wrong, unassisted, assisted, and assisted split by whether the
overlay was on; each a pooled proportion with the same case-clustered Wilson interval. It is
descriptive: the reads are not randomized to the overlay, so the split is not a causal
comparison.

Reads without telemetry (read before it was recorded, or a file without the columns) are left
out of what needs it, with a note; the automation-bias rows by arm need none.

References
----------
Goddard K, Roudsari A, Wyatt JC (2012). Automation bias: a systematic review of frequency, effect
mediators, and mitigators. J Am Med Inform Assoc 19(1):121-127. doi:10.1136/amiajnl-2011-000089
Korn EL, Graubard BI (1998). Survey Methodology 24(2):193-201.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis._common import jsonable_float as _num
from analysis.case_clustered import clustered_proportion
from analysis.longreads import ARMS, TELEMETRY_COLUMNS, _data_row

NO_TELEMETRY = (
    "no reading-behaviour telemetry in these reads (read before the platform recorded it, or "
    "a file without its columns): slices, time on screen and overlay use are not described"
)


@dataclass(frozen=True)
class Summary:
    """Mean, median and quartiles of a per-read quantity (NaN without reads)."""

    n: int
    mean: float
    median: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: np.ndarray[Any, Any]) -> Summary:
        values = values[np.isfinite(values)]
        if not len(values):
            return cls(0, np.nan, np.nan, np.nan, np.nan)
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        return cls(len(values), float(values.mean()), float(median), float(q1), float(q3))

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": _num(self.mean),
            "median": _num(self.median),
            "q1": _num(self.q1),
            "q3": _num(self.q3),
        }


@dataclass(frozen=True)
class Rate:
    """A pooled proportion with its case-clustered Wilson interval."""

    events: int
    n: int
    estimate: float
    ci_lower: float
    ci_upper: float

    @classmethod
    def of(cls, case: np.ndarray[Any, Any], event: np.ndarray[Any, Any], alpha: float) -> Rate:
        p, lo, hi = clustered_proportion(case.astype(np.int64), event.astype(bool), alpha)
        return cls(int(event.sum()), int(event.size), p, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "n": self.n,
            "estimate": _num(self.estimate),
            "ci_lower": _num(self.ci_lower),
            "ci_upper": _num(self.ci_upper),
        }


@dataclass(frozen=True)
class ArmBehaviour:
    arm: str
    n_reads: int
    n_with_telemetry: int
    slices_fraction: Summary
    time_s: Summary
    overlay_on: Rate | None  # arms that show the AI only
    overlay_s: Summary | None  # among reads with the overlay on
    first_ai_view_s: Summary | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "n_reads": self.n_reads,
            "n_with_telemetry": self.n_with_telemetry,
            "slices_fraction": self.slices_fraction.to_dict(),
            "time_s": self.time_s.to_dict(),
            "overlay_on": None if self.overlay_on is None else self.overlay_on.to_dict(),
            "overlay_s": None if self.overlay_s is None else self.overlay_s.to_dict(),
            "first_ai_view_s": (
                None if self.first_ai_view_s is None else self.first_ai_view_s.to_dict()
            ),
        }


@dataclass(frozen=True)
class BiasRow:
    """Reader accuracy on the finding rows of ``group`` where the AI was ``ai`` (right/wrong)."""

    group: str
    ai: str
    accuracy: Rate

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "ai": self.ai, **self.accuracy.to_dict()}


@dataclass(frozen=True)
class BehaviourResult:
    arms: tuple[ArmBehaviour, ...]
    automation_bias: tuple[BiasRow, ...]
    alpha: float
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "arms": [a.to_dict() for a in self.arms],
            "automation_bias": [r.to_dict() for r in self.automation_bias],
            "notes": list(self.notes),
        }


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray[Any, Any]:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def check_telemetry(long: pd.DataFrame) -> None:
    """Refuse telemetry values that cannot be true; blanks are reads without telemetry.

    Raises ``ValueError`` naming the column and the first data row at fault: a value that is not
    a number, a negative or non-finite one, ``ai_overlay_on`` other than 0/1, or more slices
    viewed than the case has.
    """
    for column in TELEMETRY_COLUMNS:
        if column not in long.columns:
            continue
        raw = long[column]
        values = _numbers(long, column)
        given = raw.notna().to_numpy()
        if raw.dtype.kind not in "fiub":  # text: a blank is no value
            given = given & (raw.astype(str).str.strip() != "").to_numpy()
        bad = given & ~(np.isfinite(values) & (values >= 0))
        if column == "ai_overlay_on":
            bad = bad | (given & np.isfinite(values) & ~np.isin(values, (0.0, 1.0)))
        if bad.any():
            wanted = "0 or 1" if column == "ai_overlay_on" else "a number 0 or more"
            first = raw.iloc[int(np.flatnonzero(bad)[0])]
            row = _data_row(long, pd.Series(bad, index=long.index))
            raise ValueError(f"{column} must be {wanted}, got {first!r} in data row {row}")
    over = _numbers(long, "slices_viewed") > _numbers(long, "slices_total")
    if over.any():
        row = _data_row(long, pd.Series(over, index=long.index))
        raise ValueError(f"slices_viewed is more than slices_total in data row {row}")


def _arm(reads: pd.DataFrame, arm: str, shows_ai: bool, alpha: float) -> ArmBehaviour:
    mine = reads[reads["arm"] == arm]
    total = _numbers(mine, "slices_total")
    has = np.isfinite(total) & (total > 0)
    fraction = np.where(has, _numbers(mine, "slices_viewed") / np.where(has, total, 1), np.nan)
    overlay_rate = overlay_s = first = None
    if shows_ai:
        on = _numbers(mine, "ai_overlay_on")
        known = np.isfinite(on)
        if known.any():
            case = pd.factorize(mine["case"].astype(str))[0]
            overlay_rate = Rate.of(case[known], on[known] == 1, alpha)
            seconds = _numbers(mine, "ai_overlay_s")
            overlay_s = Summary.of(seconds[known & (on == 1)])
            first = Summary.of(_numbers(mine, "ai_first_view_s"))
    return ArmBehaviour(
        arm=arm,
        n_reads=len(mine),
        n_with_telemetry=int(has.sum()),
        slices_fraction=Summary.of(fraction),
        time_s=Summary.of(np.where(has, _numbers(mine, "series_time_s"), np.nan)),
        overlay_on=overlay_rate,
        overlay_s=overlay_s,
        first_ai_view_s=first,
    )


def _bias(long: pd.DataFrame, thresholds: dict[str, float], alpha: float) -> list[BiasRow]:
    prob = _numbers(long, "ai_probability")
    threshold = long["finding"].astype(str).map(thresholds).to_numpy(dtype=np.float64)
    usable = np.isfinite(prob) & np.isfinite(threshold)
    rows = long[usable]
    truth = rows["truth"].to_numpy(dtype=np.int64)
    ai_right = (prob[usable] >= threshold[usable]).astype(np.int64) == truth
    reader_right = rows["call"].to_numpy(dtype=np.int64) == truth
    case = pd.factorize(rows["case"].astype(str))[0]
    arm = rows["arm"].astype(str).to_numpy()
    on = _numbers(rows, "ai_overlay_on")
    groups = [
        (ARMS[0], arm == ARMS[0]),
        (ARMS[1], arm == ARMS[1]),
        (f"{ARMS[1]}, overlay on", (arm == ARMS[1]) & (on == 1)),
        (f"{ARMS[1]}, overlay off", (arm == ARMS[1]) & (on == 0)),
    ]
    out = []
    for group, chosen in groups:
        for label, right in (("right", ai_right), ("wrong", ~ai_right)):
            where = chosen & right
            if where.any():
                out.append(BiasRow(group, label, Rate.of(case[where], reader_right[where], alpha)))
    return out


def reading_behaviour(
    long: pd.DataFrame, *, thresholds: dict[str, float], alpha: float = 0.05
) -> BehaviourResult:
    """Describe the reading behaviour of a validated long frame (module docstring).

    ``long`` has passed :func:`analysis.longreads.check_long_frame` (rows with truth);
    ``thresholds`` is the AI's operating threshold per finding type. The telemetry columns may
    be absent or empty: the result then holds the automation-bias rows by arm and a note.
    Values that cannot be true raise ``ValueError`` (:func:`check_telemetry`).
    """
    check_telemetry(long)
    notes: list[str] = []
    reads = long.drop_duplicates(["reader", "case", "arm"])
    present = [c for c in TELEMETRY_COLUMNS if c in long.columns]
    total = _numbers(reads, "slices_total")
    n_with = int(np.isfinite(total).sum())
    arms: tuple[ArmBehaviour, ...] = ()
    if len(present) < len(TELEMETRY_COLUMNS) or n_with == 0:
        notes.append(NO_TELEMETRY)
    else:
        if n_with < len(reads):
            notes.append(
                f"telemetry for {n_with} of {len(reads)} reads: the others were read before "
                "the platform recorded it and are left out of slices, time and overlay use"
            )
        arms = tuple(_arm(reads, arm, arm == ARMS[1], alpha) for arm in ARMS)
    bias = _bias(long, thresholds, alpha)
    if not bias:
        notes.append("no AI probabilities: the automation-bias look needs the AI's calls")
    return BehaviourResult(arms=arms, automation_bias=tuple(bias), alpha=alpha, notes=tuple(notes))
