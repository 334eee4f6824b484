"""Lesion locations in the ground truth: what ``Truth.location`` holds for FROC scoring.

A present finding may carry its lesions, a list stored in ``Truth.location``::

    [{"lesion": 1, "image": 1, "x": 120.0, "y": 88.5, "radius": 12.0, "weight": 0.5}, ...]

``lesion`` is a whole number from 1, unique within the case and finding type (RJafroc's
LesionID); ``image`` the image's position in the case; ``x`` (column) and ``y`` (row) the
lesion's centre in that image's pixels, as the readers' marks are; ``radius`` in pixels (> 0);
``weight`` (optional) the lesion's weight in the weighted figures of merit (wAFROC): given for
every lesion of the case and finding type or for none (then equal), summing to 1 as RJafroc
requires. A lesion on an absent finding, outside its image, with a radius that is not positive,
or on an image the case lacks is refused.

A lesion in a CT or MR stack also says where it lies along the stack: ``slice`` (its centre
slice's number in its series, from 1; ``image`` is that slice's position in the case),
``series`` (the series' place in the case, default 1) and ``depth`` (how many slices either
side of the centre it reaches, default 0)::

    {"lesion": 1, "image": 24, "series": 1, "slice": 24, "depth": 2, "x": 45.6, "y": 66.3,
     "radius": 2.5}

It spans slices ``slice - depth`` to ``slice + depth``, which must lie in its series; a mark on
any of them within ``radius`` of the centre (in the slice's plane) localizes it.

Other JSON (an object) in ``location`` is kept as a free-form note and never scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["LESION_KEYS", "has_lesions", "lesion_problems", "normalize_lesions"]

LESION_KEYS = ("lesion", "image", "x", "y", "radius", "weight", "series", "slice", "depth")
STACK_KEYS = ("series", "slice", "depth")
_WEIGHT_TOLERANCE = 1e-6


def has_lesions(location: Any) -> bool:
    """Whether a stored ``Truth.location`` is a lesion list (scored) rather than a note."""
    return isinstance(location, list) and bool(location)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _show(value: Any) -> str:
    """A CSV's number as it was typed (1, not 1.0); anything else as its repr."""
    number = _number(value)
    return f"{number:g}" if number is not None else repr(value)


Stacks = Mapping[int, tuple[int, int, int]]
"""Per image position of a case: its series' place, its slice number, the series' slice count."""


def _stack_problem(
    lesion: Mapping[str, Any], out: dict[str, Any], name: str, stacks: Stacks | None
) -> str:
    """Check a lesion's place along its stack and add it to ``out``; the problem, or ""."""
    series = _whole(lesion.get("series", 1))
    number = _whole(lesion.get("slice"))
    depth = _whole(lesion.get("depth", 0))
    if number is None or number < 1 or series is None or series < 1:
        return f"{name}: series and slice must be whole numbers from 1"
    if depth is None or depth < 0:
        return f"{name}: depth must be a whole number of slices, 0 or more"
    out.update(series=series, slice=number, depth=depth)
    if stacks is None:
        return ""
    on_series, on_slice, count = stacks[out["image"]]
    if (on_series, on_slice) != (series, number):
        return (
            f"{name}: image {out['image']} is series {on_series} slice {on_slice}, "
            f"not series {series} slice {number}"
        )
    if number - depth < 1 or number + depth > count:
        return (
            f"{name}: slices {number - depth} to {number + depth} leave its series "
            f"(slices 1 to {count})"
        )
    return ""


def _lesion_problem(
    lesion: Any, sizes: Mapping[int, tuple[int, int]], stacks: Stacks | None = None
) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(lesion, Mapping):
        return None, "a lesion must be an object with lesion, image, x, y and radius"
    extra = sorted(set(map(str, lesion)) - set(LESION_KEYS))
    if extra:
        return None, f"unknown lesion key(s): {', '.join(extra)}"
    lesion_id, image = _whole(lesion.get("lesion")), _whole(lesion.get("image"))
    x, y, radius = (_number(lesion.get(k)) for k in ("x", "y", "radius"))
    name = f"lesion {_show(lesion.get('lesion'))}"
    if lesion_id is None or lesion_id < 1:
        return None, f"{name}: the lesion ID must be a whole number from 1"
    if image is None or image not in sizes:
        known = ", ".join(map(str, sorted(sizes))) or "none"
        where = _show(lesion.get("image"))
        return None, f"{name}: unknown image position {where} (the case has {known})"
    if x is None or y is None:
        return None, f"{name}: x and y must be numbers (pixels)"
    rows, columns = sizes[image]
    if not (0 <= x < columns and 0 <= y < rows):
        return None, f"{name}: ({x:g}, {y:g}) is off image {image} ({columns} x {rows} pixels)"
    if radius is None or radius <= 0:
        return None, f"{name}: the radius must be a positive number of pixels"
    out: dict[str, Any] = {"lesion": lesion_id, "image": image, "x": x, "y": y, "radius": radius}
    if lesion.get("weight") is not None:
        weight = _number(lesion.get("weight"))
        if weight is None or not 0 < weight <= 1:
            return None, f"{name}: the weight must be a number in (0, 1]"
        out["weight"] = weight
    if any(lesion.get(k) is not None for k in STACK_KEYS):
        problem = _stack_problem(lesion, out, name, stacks)
        if problem:
            return None, problem
    return out, ""


def lesion_problems(
    lesions: Sequence[Any],
    *,
    present: bool,
    sizes: Mapping[int, tuple[int, int]],
    stacks: Stacks | None = None,
) -> list[str]:
    """Why ``lesions`` cannot be one case x finding type's locations (empty when they can).

    ``sizes`` maps the case's image positions to ``(rows, columns)``; ``stacks`` (when known)
    to their series, slice number and series length, against which a lesion's ``series``,
    ``slice`` and ``depth`` are checked.
    """
    if not lesions:
        return []
    if not present:
        return ["a lesion on an absent finding (present is 0)"]
    problems, ids, weights = [], [], []
    for lesion in lesions:
        clean, problem = _lesion_problem(lesion, sizes, stacks)
        if clean is None:
            problems.append(problem)
            continue
        if clean["lesion"] in ids:
            problems.append(f"lesion {clean['lesion']} appears twice")
        ids.append(clean["lesion"])
        weights.append(clean.get("weight"))
    if problems:
        return problems
    given = [w for w in weights if w is not None]
    if given and len(given) != len(weights):
        return ["give a weight for every lesion of the case and finding type, or for none"]
    if given and abs(sum(given) - 1.0) > _WEIGHT_TOLERANCE:
        return [f"the lesions' weights sum to {sum(given):g}, not 1"]
    return []


def normalize_lesions(lesions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Valid lesions (see :func:`lesion_problems`) as stored: numbers typed, sorted by ID."""
    out = []
    for lesion in lesions:
        item: dict[str, Any] = {
            "lesion": int(lesion["lesion"]),
            "image": int(lesion["image"]),
            "x": float(lesion["x"]),
            "y": float(lesion["y"]),
            "radius": float(lesion["radius"]),
        }
        if lesion.get("weight") is not None:
            item["weight"] = float(lesion["weight"])
        if lesion.get("slice") is not None:
            item["series"] = int(lesion.get("series", 1))
            item["slice"] = int(lesion["slice"])
            item["depth"] = int(lesion.get("depth", 0))
        out.append(item)
    return sorted(out, key=lambda item: item["lesion"])
