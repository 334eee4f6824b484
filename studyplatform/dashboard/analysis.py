"""The study's analysis: every endpoint of the statistics engine, the drift check, the figures.

Pure with respect to the database: it takes the long frame and the protocol in force and
returns one JSON-able dict, which :mod:`studyplatform.dashboard.services` caches per data and
protocol version. Each finding type is analysed over the reads that asked it (a type added by an
amendment is asked from then on), with a note saying how many; an endpoint without enough data
is skipped with a note, and the rest is computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from analysis.drift import score_distribution_figure, score_drift
from analysis.report import analyze_long_frame, check_long_frame, mrmc_frame

Progress = Callable[[int, str], None]


def _no_progress(percent: int, stage: str) -> None:
    return None


def _figure(section: str, title: str, fig: Any) -> dict[str, Any]:
    return {"section": section, "title": title, "figure": json.loads(fig.to_json())}


def _coverage(
    long: pd.DataFrame, finding_types: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """How many reads asked each finding type of the protocol, and notes where not all did."""
    total = len(long.drop_duplicates(["reader", "case", "arm"]))
    asked = long.groupby("finding").size().to_dict() if len(long) else {}
    rows, notes = [], []
    for ft in finding_types:
        code, version = ft["code"], int(ft.get("introduced_in") or 1)
        n = int(asked.get(code, 0))
        rows.append({**ft, "reads": n, "reads_total": total})
        added = f" (added in protocol v{version})" if version > 1 else ""
        if n == 0:
            notes.append(f"{code}{added}: no read has asked it yet; its endpoints are skipped")
        elif n < total and version > 1:
            notes.append(
                f"{code} added in protocol v{version}: analysed over {n} of {total} reads, "
                "those opened from then on"
            )
        elif n < total:
            notes.append(f"{code}: analysed over the {n} of {total} reads that asked it")
    return rows, notes


def analyze(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None,
    thresholds: dict[str, float],
    protocol: dict[str, Any] | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Analyse a study's long frame under ``protocol``; ``ValueError`` when nothing can be.

    ``protocol`` is ``{"version", "sha256", "finding_types": [{code, introduced_in,
    clinically_significant, ai_threshold}]}``; the result repeats it, with per finding type the
    number of reads that asked it. Rows without truth are left out (and counted in ``notes``).
    """
    from analysis import figures

    if long.empty:
        raise ValueError("no submitted reads yet")
    protocol = dict(protocol or {})
    coverage, notes = _coverage(long, protocol.get("finding_types", []))
    protocol["finding_types"] = coverage
    usable = long[long["truth"].notna()].copy()
    if len(usable) < len(long):
        notes.append(f"{len(long) - len(usable)} rows without ground truth left out")
    if usable.empty:
        raise ValueError("no reads of cases with ground truth yet")
    usable["truth"] = usable["truth"].astype("int64")
    usable = check_long_frame(usable)
    progress(20, "MRMC, missed findings, agreement, AI standalone, reading time")
    result = analyze_long_frame(usable, significant=significant, ai_threshold=thresholds)
    progress(70, "drift of the AI scores per site")
    drift: dict[str, Any] | None = None
    figs: list[dict[str, Any]] = []
    try:
        drift = score_drift(usable).to_dict()
    except ValueError as error:
        notes.append(f"AI score drift skipped: {error}")
    progress(80, "figures")
    for finding in result.findings:
        figs.append(
            _figure(
                "mrmc",
                f"ROC curves, {finding}",
                figures.roc_curves_figure(
                    mrmc_frame(usable, finding), title=f"ROC curves, {finding} (probability)"
                ),
            )
        )
        if finding in result.mrmc:
            figs.append(
                _figure(
                    "mrmc",
                    f"Reader AUC, {finding}",
                    figures.auc_forest_figure(result.mrmc[finding], title=f"Reader AUC, {finding}"),
                )
            )
    if result.missed.findings:
        figs.append(
            _figure("missed", "Missed findings", figures.missed_rates_figure(result.missed))
        )
        figs.append(
            _figure(
                "missed",
                "False positives",
                figures.missed_rates_figure(result.missed, kind="false_positive"),
            )
        )
    if result.standalone.findings:
        figs.append(
            _figure(
                "standalone",
                "AI AUC by subgroup",
                figures.standalone_subgroups_figure(result.standalone),
            )
        )
    if drift is not None:
        figs.append(
            _figure("drift", "AI score distribution per site", score_distribution_figure(usable))
        )
    analysis = result.to_dict()
    analysis["notes"] = notes + analysis["notes"]
    return {
        "protocol": protocol,
        "analysis": analysis,
        "drift": drift,
        "thresholds": thresholds,
        "figures": figs,
    }
