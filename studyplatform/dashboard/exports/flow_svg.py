"""The flow diagram (CONSORT / STARD style) as inline SVG, drawn from :func:`study_flow`.

Boxes top to bottom: cases received (and the inputs refused at import), excluded before
allocation (beside), allocated, then one column per arm: allocated to the arm, read (with reads
per reader), analysed (complete case), and the reads left out of the analysis (below the
columns). Plain SVG with no script or external reference, so the checklist file stays
self-contained.
"""

from __future__ import annotations

from html import escape

from studyplatform.dashboard.selectors.flow import ArmFlow, StudyFlow

_LINE = 16
_PAD = 8
_COLUMN = 300
_GAP = 40
_SIDE = 360  # the excluded box beside the main column


def _box(x: int, y: int, width: int, lines: list[str], *, css: str = "step") -> tuple[str, int]:
    """A box with one text line per item; returns its SVG and its height."""
    height = _PAD * 2 + _LINE * len(lines)
    text = "".join(
        f'<tspan x="{x + _PAD}" y="{y + _PAD + _LINE * (i + 1) - 4}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    svg = (
        f'<rect class="{css}" x="{x}" y="{y}" width="{width}" height="{height}" rx="4"/>'
        f"<text>{text}</text>"
    )
    return svg, height


def _arrow(x1: int, y1: int, x2: int, y2: int) -> str:
    return f'<line class="arrow" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#head)"/>'


def _per_reader(arm: ArmFlow, per_line: int = 4) -> list[str]:
    items = [f"{code}: {n}" for code, n in arm.reads_per_reader.items()]
    return [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]


def flow_svg(flow: StudyFlow) -> str:
    """The diagram as one ``<svg>`` element; every number is a field of ``flow``."""
    n_arms = max(len(flow.arms), 1)
    arms_width = n_arms * _COLUMN + (n_arms - 1) * _GAP
    centre = max(arms_width // 2, _COLUMN // 2)
    width = max(arms_width, centre + _COLUMN // 2 + _GAP // 2 + _SIDE)
    parts: list[str] = []
    y = 0
    received = [
        f"Cases received: n = {flow.received}",
        f"Inputs refused at import: n = {flow.refused}",
    ]
    box, h = _box(centre - _COLUMN // 2, y, _COLUMN, received)
    parts.append(box)
    excluded = [f"Excluded before allocation: n = {flow.excluded}"] + [
        f"- {reason}: {n}" for reason, n in sorted(flow.not_allocated.items())
    ]
    y_next = y + h + _GAP
    side_x = centre + _COLUMN // 2 + _GAP // 2
    box, side_h = _box(side_x, y + h + 4, _SIDE, excluded, css="excluded")
    parts += [box, _arrow(centre, y + h, centre, y_next + side_h + 8)]
    parts.append(_arrow(centre, y + h + 4 + side_h // 2, side_x, y + h + 4 + side_h // 2))
    y = y_next + side_h + 8
    box, h = _box(
        centre - _COLUMN // 2, y, _COLUMN, [f"Randomized / allocated cases: n = {flow.allocated}"]
    )
    parts.append(box)
    top = y + h
    y = top + _GAP
    bottoms = []
    for i, arm in enumerate(flow.arms):
        x = i * (_COLUMN + _GAP)
        mid = x + _COLUMN // 2
        parts.append(_arrow(centre, top, mid, y))
        col_y = y
        steps = [
            [
                f"Allocated to {arm.label}:",
                f"{arm.cases_allocated} cases, {arm.assignments} reads assigned",
            ],
            [
                f"Read: {arm.reads} reads by {arm.readers} readers",
                "reads per reader:",
                *_per_reader(arm),
            ],
            [
                "Analysed (complete case):",
                f"{arm.analysed_reads} reads, {arm.analysed_cases} cases,",
                f"{arm.analysed_readers} readers",
            ],
        ]
        for k, lines in enumerate(steps):
            box, h = _box(x, col_y, _COLUMN, lines, css=f"step arm-{escape(arm.arm)}")
            parts.append(box)
            col_y += h
            if k < len(steps) - 1:
                parts.append(_arrow(mid, col_y, mid, col_y + _GAP // 2))
                col_y += _GAP // 2
        bottoms.append(col_y)
    y = max(bottoms, default=y) + _GAP // 2
    left_out = [f"Reads left out of the analysis: n = {sum(flow.left_out_reads.values())}"] + [
        f"- {reason}: {n}" for reason, n in sorted(flow.left_out_reads.items())
    ]
    if flow.incomplete_readers:
        left_out.append(f"- readers not finished: {', '.join(flow.incomplete_readers)}")
    box, h = _box(0, y, width, left_out, css="excluded")
    parts.append(box)
    height = y + h + 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow" role="img" '
        f'aria-label="Flow of cases and reads" viewBox="-2 -2 {width + 4} {height + 4}" '
        f'width="{width + 4}" height="{height + 4}">'
        '<defs><marker id="head" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>' + "".join(parts) + "</svg>"
    )
