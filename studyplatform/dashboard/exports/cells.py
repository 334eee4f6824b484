"""Cells that a spreadsheet would run as a formula are neutralized.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
Excel, LibreOffice and Google Sheets as a formula (CSV injection, OWASP). Such a cell gets a
leading apostrophe, which shows the text as text. Numbers are written as numbers and never
touched; IDs that begin with one of those characters change the same way in every export, so
the exports stay consistent with each other.
"""

from __future__ import annotations

from typing import TypeVar

_FORMULA_START = frozenset("=+-@\t\r")

T = TypeVar("T")


def neutralize(value: T) -> T | str:
    if isinstance(value, str) and value[:1] in _FORMULA_START:
        return "'" + value
    return value
