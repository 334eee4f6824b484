"""Choose a case's layout on the reading page from its study's hanging protocols.

A case is seen as *units*, as the viewer shows them: a CT or MR series of several slices is one
unit (a stack), any other series gives one unit per image (a radiograph, each view of a
two-view series). A protocol applies when each of its required rules finds its ``nth``
matching unit; the first that applies, in priority order, is the layout. None applies: None,
and the page shows its single default viewport.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studyplatform.studies.models import DescriptionMatch, HangingProtocol, HangingRule
from studyplatform.studies.selectors import SeriesView

STACKED_MODALITIES = ("CT", "MR")


@dataclass(frozen=True)
class Unit:
    series: int  # the series' position in the case
    image: int | None  # an image of a series shown image by image; None: the whole stack
    modality: str
    description: str
    view_position: str
    body_part: str


@dataclass(frozen=True)
class Viewport:
    number: int  # from 1, row by row
    series: int | None  # None: an optional viewport that found nothing (left empty)
    image: int | None


@dataclass(frozen=True)
class Layout:
    protocol: str
    rows: int
    columns: int
    viewports: tuple[Viewport, ...]


def units(series: tuple[SeriesView, ...]) -> list[Unit]:
    """The case's units in order (the viewer's own rule for what is a stack)."""
    found: list[Unit] = []
    for s in series:
        common = (s.modality, s.description, s.view_position, s.body_part)
        if len(s.slices) > 1 and s.modality in STACKED_MODALITIES:
            found.append(Unit(s.position, None, *common))
        else:
            found += [Unit(s.position, sl.image, *common) for sl in s.slices]
    return found


def _same(wanted: str, value: str) -> bool:
    return not wanted or wanted.strip().upper() == value.strip().upper()


def rule_matches(rule: HangingRule, unit: Unit) -> bool:
    if not (
        _same(rule.modality, unit.modality)
        and _same(rule.view_position, unit.view_position)
        and _same(rule.body_part, unit.body_part)
    ):
        return False
    if not rule.description:
        return True
    if rule.description_match == DescriptionMatch.REGEX:
        try:
            return re.search(rule.description, unit.description, re.IGNORECASE) is not None
        except re.error:
            return False  # refused by the admin's form; an old row matches nothing
    return rule.description.casefold() in unit.description.casefold()


def _apply(protocol: HangingProtocol, case_units: list[Unit]) -> Layout | None:
    viewports = []
    for rule in sorted(protocol.rules.all(), key=lambda r: r.viewport):
        if rule.viewport > protocol.rows * protocol.columns:
            continue
        matching = [u for u in case_units if rule_matches(rule, u)]
        unit = matching[rule.nth - 1] if len(matching) >= rule.nth else None
        if unit is None and rule.required:
            return None
        viewports.append(
            Viewport(rule.viewport, unit.series if unit else None, unit.image if unit else None)
        )
    if not any(v.series is not None for v in viewports):
        return None
    return Layout(protocol.name, protocol.rows, protocol.columns, tuple(viewports))


def case_layout(
    *, study_id: int, case_modality: str, series: tuple[SeriesView, ...]
) -> Layout | None:
    """The layout of a case: its study's first applicable hanging protocol, or None."""
    protocols = (
        HangingProtocol.objects.filter(study_id=study_id)
        .prefetch_related("rules")
        .order_by("priority", "pk")
    )
    case_units = units(series)
    for protocol in protocols:
        if protocol.case_modality and protocol.case_modality.upper() != case_modality.upper():
            continue
        layout = _apply(protocol, case_units)
        if layout is not None:
            return layout
    return None
