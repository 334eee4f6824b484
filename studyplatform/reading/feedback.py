"""What a reader sees after submitting a training read: the truth beside the reader's answer,
and the AI's answer where the study wants it (``Study.training_shows_ai``)."""

from __future__ import annotations

from dataclasses import dataclass

from studyplatform.reading.models import Assignment
from studyplatform.reading.selectors import (
    AIView,
    finding_types_for,
    latest_read,
    read_answers,
    training_ai_view,
)
from studyplatform.studies.models import Truth

__all__ = ["FeedbackRow", "TrainingFeedback", "training_feedback"]


@dataclass(frozen=True)
class FeedbackRow:
    code: str
    name: str
    truth: bool | None  # None: no truth recorded for the case
    call: bool | None
    confidence: int | None

    @property
    def agrees(self) -> bool | None:
        return None if self.truth is None or self.call is None else self.truth == self.call


@dataclass(frozen=True)
class TrainingFeedback:
    rows: tuple[FeedbackRow, ...]
    ai: AIView | None


def training_feedback(assignment: Assignment) -> TrainingFeedback | None:
    """The feedback of the reader's submitted training read; None for any other assignment."""
    if not assignment.session.training:
        return None
    read = latest_read(assignment)
    if read is None:
        return None
    answers = read_answers(read)["findings"]
    truth = dict(
        Truth.objects.filter(case_id=assignment.case_id).values_list(
            "finding_type__code", "present"
        )
    )
    rows = tuple(
        FeedbackRow(
            code=ft.code,
            name=ft.name,
            truth=truth.get(ft.code),
            call=answers.get(ft.code, {}).get("present"),
            confidence=answers.get(ft.code, {}).get("confidence"),
        )
        for ft in finding_types_for(assignment)
    )
    return TrainingFeedback(rows=rows, ai=training_ai_view(assignment))
