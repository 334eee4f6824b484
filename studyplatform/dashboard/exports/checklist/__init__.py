"""The submission checklist: CONSORT-AI and STARD 2015 items answered from stored facts.

Items are those of CONSORT-AI (Liu et al. 2020, doi:10.1038/s41591-020-1034-x, with the CONSORT
2010 items it extends) and STARD 2015 (Bossuyt et al. 2015, doi:10.1136/bmj.h5527) that a reader
study of an AI aid can answer, each in a short paraphrase. An item is answered from what the
platform stores (the study, protocol, allocation, cases, truth, pinned model, pre-reads, readers,
reads and the audit trail) and names the export, page or audit event that holds its evidence.
Where the platform does not store the answer, the item says "needs a human answer" and what is
missing; such an item still shows the stored facts it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from studyplatform.dashboard.exports.checklist.items import NEEDS_HUMAN, Item, Table
from studyplatform.dashboard.exports.checklist.methods import (
    cases_items,
    identity,
    model_items,
    randomization_items,
    readers_item,
)
from studyplatform.dashboard.exports.checklist.results import (
    endpoint_item,
    integrity_items,
    results_items,
)
from studyplatform.dashboard.exports.checklist.training import training_item
from studyplatform.dashboard.exports.flow_svg import flow_svg
from studyplatform.dashboard.selectors.flow import StudyFlow, study_flow
from studyplatform.studies.models import Study

__all__ = ["NEEDS_HUMAN", "Checklist", "Item", "Table", "build_checklist", "render_checklist"]


@dataclass(frozen=True)
class Checklist:
    study: Study
    generated_at: datetime
    items: list[Item]
    flow: StudyFlow
    svg: str

    @property
    def answered(self) -> int:
        return sum(not item.needs_human for item in self.items)

    @property
    def human(self) -> int:
        return sum(item.needs_human for item in self.items)


def build_checklist(study: Study, *, analysis: dict[str, Any] | None = None) -> Checklist:
    """Every item of the checklist, answered from the study's stored facts (and its analysis)."""
    flow = study_flow(study)
    items = [
        *identity(study),
        *model_items(study),
        readers_item(study),
        training_item(study),
        *cases_items(study, flow),
        *randomization_items(study),
        *endpoint_item(study, analysis),
        *results_items(study, flow),
        *integrity_items(study),
    ]
    return Checklist(study, timezone.now(), items, flow, flow_svg(flow))


def render_checklist(checklist: Checklist) -> str:
    """The checklist as one self-contained HTML file (inline CSS and SVG)."""
    return render_to_string(
        "dashboard/checklist_file.html",
        {"checklist": checklist, "study": checklist.study, "needs_human": NEEDS_HUMAN},
    )
