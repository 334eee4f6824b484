"""A read's location marks: points on an image (or on a slice of a CT/MR stack), checked
against the case's images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studyplatform.reading.services.errors import InvalidReadError
from studyplatform.studies.models import FindingType

MAX_MARKS = 50


@dataclass(frozen=True)
class FindingAnswer:
    present: bool
    confidence: int
    marks: list[dict[str, int]]


def parse_marks(ft: FindingType, raw: Any) -> list[dict[str, int]]:
    """The marks of one finding: ``{image, x, y}``, optionally ``series`` and ``slice`` (a
    slice of a CT/MR stack: the series' place in the case and the slice's number in it, both
    from 1) and an optional ``confidence`` 0-100.

    A mark's own confidence rates that mark in the FROC scoring (the readers' marks as lesion
    and non-lesion localizations); without one, the mark takes the finding's confidence. Other
    keys are dropped, as before marks had a confidence.
    """
    if not isinstance(raw, list) or len(raw) > MAX_MARKS:
        raise InvalidReadError(f"{ft.name}: marks must be a list of at most {MAX_MARKS} points")
    marks = []
    for mark in raw:
        if not isinstance(mark, dict) or not all(_whole(mark.get(k)) for k in ("image", "x", "y")):
            raise InvalidReadError(f"{ft.name}: a mark needs whole-number image, x and y")
        clean = {"image": mark["image"], "x": mark["x"], "y": mark["y"]}
        if "series" in mark or "slice" in mark:
            if not all(_whole(mark.get(k)) and mark[k] >= 1 for k in ("series", "slice")):
                raise InvalidReadError(
                    f"{ft.name}: a mark on a slice needs whole-number series and slice, from 1"
                )
            clean["series"], clean["slice"] = mark["series"], mark["slice"]
        if mark.get("confidence") is not None:
            confidence = mark["confidence"]
            if not _whole(confidence) or not 0 <= confidence <= 100:
                raise InvalidReadError(
                    f"{ft.name}: a mark's confidence must be a whole number 0-100"
                )
            clean["confidence"] = confidence
        marks.append(clean)
    return marks


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_marks(
    answers: dict[int, FindingAnswer],
    sizes: dict[int, tuple[int, int]],
    slices: dict[int, tuple[int, int]] | None = None,
) -> None:
    """Marks fall inside their image; a mark naming a series and slice names the image's."""
    for answer in answers.values():
        for mark in answer.marks:
            rows_cols = sizes.get(mark["image"])
            if rows_cols is None:
                raise InvalidReadError(f"a mark names image {mark['image']}, which this case lacks")
            named = (mark["series"], mark["slice"]) if "series" in mark else None
            if named is not None and slices is not None and slices.get(mark["image"]) != named:
                raise InvalidReadError(
                    f"a mark names series {named[0]} slice {named[1]}, which is not image "
                    f"{mark['image']} of this case"
                )
            rows, cols = rows_cols
            if not (0 <= mark["x"] < cols and 0 <= mark["y"] < rows):
                raise InvalidReadError(f"mark ({mark['x']}, {mark['y']}) is outside the image")
