"""Reader training completion per reader, as the report, ``analyze`` and the checklist show it.

One list of rows (JSON-ready), rendered by each of them: the report's table, the command's text
and ``--json`` (key ``training``), and the checklist's reader-training item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from studyplatform.reading.training import TrainingState, training_statuses
from studyplatform.studies.models import Study

__all__ = ["TRAINING_HEADER", "training_rows", "training_summary", "training_table"]

TRAINING_HEADER = ("Reader", "Training", "Training reads", "Started", "Done", "Waived", "Reason")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def training_rows(study: Study) -> list[dict[str, Any]]:
    """Per enrolled reader: state (done, waived, pending, not required), reads and dates."""
    return [
        {
            "reader": s.reader,
            "state": str(s.state),
            "reads_done": s.reads_done,
            "reads_total": s.reads_total,
            "started_at": _iso(s.started_at),
            "completed_at": _iso(s.completed_at),
            "waived_at": _iso(s.waived_at),
            "waived_by": s.waived_by,
            "waiver_reason": s.waiver_reason,
        }
        for s in training_statuses(study)
    ]


def training_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The rows as table cells, in ``TRAINING_HEADER``'s order (dates to the minute)."""
    return [
        [
            r["reader"],
            r["state"],
            f"{r['reads_done']} / {r['reads_total']}" if r["reads_total"] else "-",
            (r["started_at"] or "-")[:16],
            (r["completed_at"] or "-")[:16],
            (r["waived_at"] or "-")[:16],
            r["waiver_reason"] or "-",
        ]
        for r in rows
    ]


def training_summary(rows: list[dict[str, Any]]) -> str:
    """One sentence: how many readers trained, were waived, or are pending."""
    counts = {state: sum(r["state"] == state for r in rows) for state in TrainingState}
    if counts[TrainingState.NOT_REQUIRED] == len(rows):
        return "The study defines no training cases: no reader training was required."
    return (
        f"{counts[TrainingState.DONE]} of {len(rows)} readers completed the training on the "
        f"study's training cases, {counts[TrainingState.WAIVED]} were waived by a coordinator "
        f"(reason recorded), {counts[TrainingState.PENDING]} pending."
    )
