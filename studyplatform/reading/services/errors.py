"""Errors the reading use cases raise; each message names what is wrong."""

from __future__ import annotations


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
