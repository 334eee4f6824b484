"""A study's analysis as one JSON-able object: every endpoint, the drift check, the figures.

:func:`analyze_study` is what both the platform (``manage.py analyze``, the report page, the
exports) and the command line (``python -m analysis report``) compute, so both print and render
the same numbers. It takes the long reads frame and the protocol in force and returns

``{"protocol", "analysis", "drift", "thresholds", "behaviour", "figures"}`` (and ``"froc"``)

(DESIGN.md "Analysis report JSON"): ``analysis`` is :meth:`analysis.report.ReportResult.to_dict`
with the coverage notes first, ``drift`` is :func:`analysis.drift.score_drift` (or ``None``, with a
note), ``figures`` the plotly figures as JSON, each tagged with the report section it belongs to,
``behaviour`` the reading behaviour and automation-bias look
(:func:`analysis.behaviour.reading_behaviour`; a note when the reads have no telemetry), ``froc``
the wAFROC analysis of the readers' marks (:func:`analysis.froc_report.froc_section`),
present only when the truth of a finding type has lesion locations. Each finding type is analysed
over the reads that asked it (a type added by an amendment is asked from then on), with a note
saying how many; an endpoint without enough data is skipped with a note, and the rest is computed.
The frame is validated once, here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.behaviour import reading_behaviour
from analysis.drift import score_distribution_figure, score_drift
from analysis.longreads import check_columns
from analysis.report import analyze_checked, check_ai_threshold, check_long_frame, mrmc_frame

if TYPE_CHECKING:
    from analysis.froc.marks import MarkTables

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


def _finding_codes(long: pd.DataFrame) -> list[str]:
    """The finding types of a not yet validated long frame, in order of appearance."""
    return [str(x) for x in pd.unique(long["finding"].astype(str).str.strip())]


def file_protocol(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None,
    thresholds: dict[str, float],
    ni_margin: float | None = None,
) -> dict[str, Any]:
    """The protocol a file analysis assumes: every finding type of the frame, from version 1.

    Only the platform knows a study's protocol version and digest; from a file they are ``None``.
    The primary endpoint is the AUC, with the non-inferiority margin given (``None``: none).
    """
    return {
        "version": None,
        "sha256": None,
        "primary_endpoint": "auc",
        "ni_margin": ni_margin,
        "finding_types": [
            {
                "code": c,
                "introduced_in": 1,
                "clinically_significant": significant is None or c in significant,
                "ai_threshold": thresholds.get(c),
            }
            for c in _finding_codes(long)
        ],
    }


def analyze_study(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None,
    thresholds: dict[str, float],
    protocol: dict[str, Any] | None = None,
    complete_readers: Collection[str] | None = None,
    alpha: float = 0.05,
    progress: Progress = _no_progress,
    marks: MarkTables | None = None,
) -> dict[str, Any]:
    """Analyse a study's long frame under ``protocol``; ``ValueError`` when nothing can be.

    Parameters
    ----------
    long
        The long reads frame (DESIGN.md); rows without truth are left out (counted in ``notes``).
    significant
        Clinically significant finding types (``None``: all), pooled in the missed findings.
    thresholds
        The AI's operating threshold per finding type, each in (0, 1).
    protocol
        ``{"version", "sha256", "finding_types": [{code, introduced_in, clinically_significant,
        ai_threshold}], "primary_endpoint", "ni_margin"}``; the result repeats it, with per
        finding type the number of reads that asked it. With an ``ni_margin`` and the AUC as
        the primary endpoint (the default), each finding's MRMC result holds the
        non-inferiority test of assisted - unassisted; with another primary endpoint a note
        says the margin is not applied to the AUC.
    complete_readers
        The readers who finished both arms; ``None`` infers them from the reads
        (:func:`analysis.report.complete_readers`).
    alpha
        Two-sided level of every interval.
    progress
        Called with a percentage and the stage under way.
    marks
        The readers' marks and the truth's lesions (:class:`analysis.froc.marks.MarkTables`):
        each finding type with lesion locations and marks gets the FROC section.
    """
    from analysis import figures

    check_columns(long)
    if long.empty:
        raise ValueError("no submitted reads yet")
    protocol = dict(protocol or {})
    coverage, notes = _coverage(long, protocol.get("finding_types", []))
    protocol["finding_types"] = coverage
    has_truth = long["truth"].notna()
    usable = long if has_truth.all() else long[has_truth]
    if len(usable) < len(long):
        notes.append(f"{len(long) - len(usable)} rows without ground truth left out")
    if usable.empty:
        raise ValueError("no reads of cases with ground truth yet")
    usable = check_long_frame(usable)
    ni_margin = protocol.get("ni_margin")
    endpoint = protocol.get("primary_endpoint") or "auc"
    if ni_margin is not None and endpoint != "auc":
        notes.append(
            f"the protocol's non-inferiority margin {ni_margin:g} is on its primary endpoint "
            f"({endpoint}), not on the AUC: the MRMC ROC analysis tests superiority only"
        )
        ni_margin = None
    progress(20, "MRMC, missed findings, agreement, AI standalone, reading time")
    result = analyze_checked(
        usable,
        significant=significant,
        ai_threshold=thresholds,
        alpha=alpha,
        complete_readers=complete_readers,
        ni_margin=ni_margin,
    )
    progress(70, "drift of the AI scores per site")
    drift: dict[str, Any] | None = None
    figs: list[dict[str, Any]] = []
    try:
        drift = score_drift(usable, alpha=alpha).to_dict()
    except ValueError as error:
        notes.append(f"AI score drift skipped: {error}")
    progress(80, "figures")
    included = result.readers.reads(usable)
    who = f"{len(result.readers.included)} complete-case readers"
    for finding in result.findings if len(included) else ():
        figs.append(
            _figure(
                "mrmc",
                f"ROC curves, {finding} ({who})",
                figures.roc_curves_figure(
                    mrmc_frame(included, finding),
                    title=f"ROC curves, {finding} (probability; {who})",
                ),
            )
        )
        if finding in result.mrmc:
            figs.append(
                _figure(
                    "mrmc",
                    f"Reader AUC, {finding} ({who})",
                    figures.auc_forest_figure(
                        result.mrmc[finding], title=f"Reader AUC, {finding} ({who})"
                    ),
                )
            )
    if result.missed is not None and result.missed.findings:
        figs.append(
            _figure(
                "missed", f"Missed findings ({who})", figures.missed_rates_figure(result.missed)
            )
        )
        figs.append(
            _figure(
                "missed",
                f"False positives ({who})",
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
    froc: dict[str, Any] | None = None
    if marks is not None and marks.located_findings() and len(included):
        from analysis.froc_report import froc_section

        progress(90, "FROC analysis of the marks")
        froc, froc_figs = froc_section(included, marks, alpha=alpha, who=who)
        figs += froc_figs
    analysis = result.to_dict()
    analysis["notes"] = notes + analysis["notes"]
    payload = {
        "protocol": protocol,
        "analysis": analysis,
        "drift": drift,
        "thresholds": thresholds,
        "behaviour": reading_behaviour(usable, thresholds=thresholds, alpha=alpha).to_dict(),
        "figures": figs,
    }
    return payload if froc is None else {**payload, "froc": froc}


def analyze_file(
    long: pd.DataFrame,
    *,
    significant: Sequence[str] | None = None,
    ai_threshold: float = 0.5,
    alpha: float = 0.05,
    ni_margin: float | None = None,
) -> dict[str, Any]:
    """:func:`analyze_study` of a long frame read from a file (``python -m analysis report``).

    One AI threshold for every finding type; the complete readers are inferred from the reads
    (:func:`analysis.report.complete_readers`); the protocol is :func:`file_protocol`, with
    ``ni_margin`` as its non-inferiority margin on the AUC.
    """
    check_ai_threshold(ai_threshold)
    check_columns(long)
    thresholds = {c: float(ai_threshold) for c in _finding_codes(long)}
    return analyze_study(
        long,
        significant=significant,
        thresholds=thresholds,
        protocol=file_protocol(
            long, significant=significant, thresholds=thresholds, ni_margin=ni_margin
        ),
        alpha=alpha,
    )
