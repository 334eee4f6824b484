"""The checklist's reader-training item: who trained on the study's training cases, who was
waived (by whom, why), who is pending; from the same rows as the report's table."""

from __future__ import annotations

from studyplatform.audit.models import Action
from studyplatform.dashboard.exports.checklist.items import Item, Table, event
from studyplatform.dashboard.selectors.training import (
    TRAINING_HEADER,
    training_rows,
    training_summary,
    training_table,
)
from studyplatform.studies.models import Study


def training_item(study: Study) -> Item:
    rows = training_rows(study)
    cases = study.cases.filter(training=True).count()
    pending = [r["reader"] for r in rows if r["state"] == "pending"]
    answer = [training_summary(rows)]
    if cases:
        answer.append(
            f"Training cases: {cases}, read in the reading viewer in every arm's presentation, "
            "with the truth"
            + (" and the AI's answer" if study.training_shows_ai else "")
            + " shown after each read; never randomized or analysed. A reader's analysed "
            "sessions open only after the training is done or waived."
        )
    return Item(
        "CONSORT-AI 4a(i); STARD 10b",
        "Reader training",
        "Describe how the readers were trained on the AI tool and the reading interface "
        "before the study reads.",
        answer,
        "coordinator's training page; waivers: " + event(study, Action.TRAINING_WAIVE),
        f"training pending for {', '.join(pending)}" if pending else "",
        [Table(list(TRAINING_HEADER), training_table(rows))] if rows else [],
    )
