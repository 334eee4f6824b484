"""The study's analysis: every endpoint of the statistics engine, the drift check, the figures.

Pure with respect to the database: it takes the long frame and returns one JSON-able dict,
which :mod:`studyplatform.dashboard.services` caches per data version.
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


def analyze(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None,
    thresholds: dict[str, float],
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Analyse a study's long frame; raise ``ValueError`` when the data cannot be analysed.

    Rows without truth are left out (and counted in ``notes``).
    """
    from analysis import figures

    if long.empty:
        raise ValueError("no submitted reads yet")
    usable = long[long["truth"].notna()].copy()
    notes = []
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
                    mrmc_frame(usable, finding), title=f"ROC curves, {finding} (confidence)"
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
    return {"analysis": analysis, "drift": drift, "thresholds": thresholds, "figures": figs}
