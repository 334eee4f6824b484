"""Errors the reading use cases raise; each message names what is wrong."""

from __future__ import annotations

from typing import Any

from studyplatform.studies.guards import StudyLockedError


class ReadingError(Exception):
    """Base class: the request cannot be carried out; nothing was saved."""


class AllocationError(ReadingError):
    """The study cannot be randomized or opened as asked."""


class NotAvailableError(ReadingError):
    """The assignment exists and is the reader's, but cannot be read now (locked session, order)."""


class OutOfOrderError(NotAvailableError):
    """An earlier case of the session is not submitted yet (cases are read in allocated order)."""


class InvalidReadError(ReadingError):
    """The submitted report is malformed (a finding missing, a confidence out of range, ...)."""


class StudyClosedError(NotAvailableError, StudyLockedError):
    """The study was locked (read from its locked row): no read, draft or correction is stored.

    Also a StudyLockedError, so a caller that handles the study guard's refusals handles this.
    """


class CorrectionRefusedError(NotAvailableError):
    """A read can no longer be corrected (the reader has seen the AI's output for the case)."""


class ContradictionError(InvalidReadError):
    """A call contradicts its rating (absent at 90, present at 10) and the study's rule refuses it.

    ``contradictions`` lists them (code, name, present, confidence); ``confirmable`` says whether
    the study accepts them once the reader confirms (rule "confirm") or not at all ("reject").
    """

    def __init__(
        self, message: str, *, contradictions: list[dict[str, Any]], confirmable: bool
    ) -> None:
        super().__init__(message)
        self.contradictions = contradictions
        self.confirmable = confirmable
