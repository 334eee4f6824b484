"""The cell values of an Excel workbook's sheets, read with the standard library.

An ``.xlsx`` file is a zip of XML parts (ECMA-376 part 1, SpreadsheetML): ``xl/workbook.xml``
names the sheets, ``xl/_rels/workbook.xml.rels`` maps them to their parts, and
``xl/sharedStrings.xml`` holds the text that cells of type ``s`` point to. Reading only the
values with ``iterparse`` is two to four times faster than openpyxl's cell objects, which
dominated the time of ``python -m analysis froc`` on large studies (``benchmarks/froc.md``).
Formulas are not evaluated: a cell holds its cached value, as written by Excel, openpyxl or R.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, fromstring, iterparse

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_COLUMN = re.compile(r"[A-Z]+")

Cell = str | float | bool | None


def _text(element: Element) -> str:
    """The text of a string item: its ``t`` runs joined (rich text has several)."""
    return "".join(t.text or "" for t in element.iter(f"{MAIN}t"))


def _column(reference: str) -> int:
    match = _COLUMN.match(reference)
    if match is None:
        raise ValueError(f"bad cell reference {reference!r}")
    index = 0
    for letter in match.group():
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _value(cell: Element, shared: list[str]) -> Cell:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        inline = cell.find(f"{MAIN}is")
        return None if inline is None else _text(inline)
    raw = cell.findtext(f"{MAIN}v")
    if raw is None:
        return None
    if kind == "s":
        return shared[int(raw)]
    if kind == "b":
        return raw == "1"
    if kind in ("str", "e"):
        return raw
    return float(raw)


def _part(book: zipfile.ZipFile, part: str) -> bytes:
    """A part's XML, refused if it declares a DTD.

    SpreadsheetML never needs one, and without a DTD there are no entities to expand, so the
    standard library parser is safe here (it never fetches external entities either).
    """
    data = book.read(part)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError(f"{part} declares a DTD, which a workbook never needs")
    return data


def _rows(book: zipfile.ZipFile, part: str, shared: list[str]) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for _, element in iterparse(io.BytesIO(_part(book, part))):  # noqa: S314 (no DTD: _part)
        if element.tag != f"{MAIN}row":
            continue
        row: list[Cell] = []
        for cell in element.iter(f"{MAIN}c"):
            reference = cell.get("r")
            column = len(row) if reference is None else _column(reference)
            row.extend([None] * (column - len(row)))
            row.append(_value(cell, shared))
        rows.append(row)
        element.clear()  # keep memory flat on large sheets
    return rows


def read_sheets(path: str | Path) -> dict[str, list[list[Cell]]]:
    """Every sheet of the workbook at ``path``: its name -> its rows of cell values.

    Numbers are floats, text is str, empty cells None; rows keep their cells' columns (a row
    ends at its last non-empty cell). Raises ValueError when the file is not a workbook.
    """
    try:
        with zipfile.ZipFile(path) as book:
            names = set(book.namelist())
            shared: list[str] = []
            if "xl/sharedStrings.xml" in names:
                strings = fromstring(_part(book, "xl/sharedStrings.xml"))  # noqa: S314
                shared = [_text(item) for item in strings.iter(f"{MAIN}si")]
            rels = fromstring(_part(book, "xl/_rels/workbook.xml.rels"))  # noqa: S314
            targets = {
                r.get("Id"): r.get("Target", "") for r in rels.iter(f"{PKG_REL}Relationship")
            }
            workbook = fromstring(_part(book, "xl/workbook.xml"))  # noqa: S314
            sheets: dict[str, list[list[Cell]]] = {}
            for sheet in workbook.iter(f"{MAIN}sheet"):
                target = targets.get(sheet.get(f"{REL}id"), "")
                part = (
                    target.lstrip("/")
                    if target.startswith("/")
                    else posixpath.normpath(posixpath.join("xl", target))
                )
                sheets[sheet.get("name", "")] = _rows(book, part, shared) if part in names else []
            return sheets
    except (OSError, KeyError, zipfile.BadZipFile, ParseError) as exc:
        raise ValueError(f"cannot read {path} as an Excel workbook: {exc}") from exc
