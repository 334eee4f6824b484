"""The report's building blocks: sections of plain tables, and how a number is written in them.

Every renderer of the report (the platform's page, its one-file export, the command line's HTML
file, ``manage.py analyze``'s text) renders these, so a number reads the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from analysis.longreads import ARMS

DASH = "\u2013"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def num(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; a dash when missing or not finite."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x:.{digits}f}"


def pvalue(x: Any) -> str:
    """A p-value with four decimals, ``< 0.0001`` below that; a dash when missing."""
    if x is None:
        return DASH
    return "< 0.0001" if x < 1e-4 else f"{x:.4f}"


def interval(est: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """``estimate (lower, upper)``; a dash when there is no estimate."""
    if est is None:
        return DASH
    return f"{num(est, digits)} ({num(lo, digits)}, {num(hi, digits)})"


def _neg(x: Any) -> Any:
    return None if x is None else -x


def auc_row(finding: str, label: str, r: dict[str, Any], test: str, note: str) -> list[str]:
    """A row of an MRMC table: the arms' values, assisted - unassisted, its test, df and p."""
    st = r["single_treatment"]
    d = r["differences"][0]
    # the engines name the pair "unassisted - assisted"; the table shows assisted - unassisted
    if d["pair"] == f"{ARMS[0]} - {ARMS[1]}":
        diff = (_neg(d["estimate"]), _neg(d["ci_upper"]), _neg(d["ci_lower"]))
    else:
        diff = (d["estimate"], d["ci_lower"], d["ci_upper"])
    return [
        finding,
        label,
        *(
            interval(st[arm]["estimate"], st[arm]["ci_lower"], st[arm]["ci_upper"])
            if arm in st
            else DASH
            for arm in ARMS
        ),
        interval(*diff),
        test,
        num(d["df"], 2),
        pvalue(d["p_value"]),
        note,
    ]


def text_table(table: Table) -> list[str]:
    """A table as aligned plain-text lines (the command lines' rendering), caption first."""
    widths = [
        max(len(str(x)) for x in column) for column in zip(table.header, *table.rows, strict=True)
    ]
    lines = [table.caption] if table.caption else []
    for row in (table.header, *table.rows):
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    return lines
