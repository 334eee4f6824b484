"""The report's "Reading behaviour" tables from :func:`analysis.behaviour.reading_behaviour`'s
dict: plain headers and rows of formatted strings (:mod:`analysis.sections` makes them tables)."""

from __future__ import annotations

from typing import Any

from analysis.tables import DASH
from analysis.tables import num as _f

TITLE = "Reading behaviour (slices viewed, time on screen, AI overlay)"
INTRO = (
    "From the viewer's telemetry of every read of a case with ground truth: the share of the "
    "case's slices shown, the seconds its images were on screen (tab visible), and in the "
    "assisted arm the heatmap overlay's use. Automation bias: the readers' accuracy on the "
    "finding rows where the AI's call (at its threshold) was right or wrong; descriptive, the "
    "overlay is the reader's choice, not randomized. Intervals: Wilson on the case-clustered "
    "effective sample size."
)
Rows = tuple[list[str], list[list[str]], str]


def _median(s: dict[str, Any] | None, digits: int = 1) -> str:
    if not s or not s["n"]:
        return DASH
    return f"{_f(s['median'], digits)} ({_f(s['q1'], digits)}{DASH}{_f(s['q3'], digits)})"


def _rate(r: dict[str, Any] | None) -> str:
    if not r or not r["n"]:
        return DASH
    return (
        f"{_f(r['estimate'], 3)} ({_f(r['ci_lower'], 3)}, {_f(r['ci_upper'], 3)}) "
        f"[{r['events']}/{r['n']}]"
    )


def behaviour_tables(b: dict[str, Any] | None) -> list[Rows]:
    """The per-arm table and the automation-bias table (each only when it has rows)."""
    if not b:
        return []
    tables: list[Rows] = []
    arms = [
        [a["arm"], f"{a['n_with_telemetry']} of {a['n_reads']}",
         _f(a["slices_fraction"]["mean"], 3), _median(a["slices_fraction"], 3),
         _median(a["time_s"]), _rate(a["overlay_on"]), _median(a["overlay_s"]),
         _median(a["first_ai_view_s"])]
        for a in b.get("arms", [])
    ]  # fmt: skip
    if arms:
        tables.append((
            ["arm", "reads with telemetry", "slices viewed (mean fraction)",
             "slices viewed (median fraction, IQR)", "time on screen, s (median, IQR)",
             "overlay on (share, 95% CI)", "overlay on, s (median, IQR)",
             "first AI view, s (median, IQR)"],
            arms, "Per read; overlay columns for the arm that shows the AI.",
        ))  # fmt: skip
    bias = [[r["group"], r["ai"], _rate(r)] for r in b.get("automation_bias", [])]
    if bias:
        tables.append((
            ["reads", "AI call", "reader accuracy (95% CI) [correct/rows]"], bias,
            "Automation bias: reader accuracy where the AI was right and where it was wrong.",
        ))  # fmt: skip
    return tables
