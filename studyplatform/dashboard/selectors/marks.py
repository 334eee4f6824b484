"""The readers' marks and the truth's lesion locations, as frames for FROC scoring.

Marks come from the effective read of each assignment (the original read, or its latest
correction), as the long frame's answers do; a mark's rating is its own confidence when the
reader gave one, else the finding's confidence. Lesions come from ``Truth.location`` lists
(:mod:`studyplatform.studies.lesions`); the acceptance rule from the study's protocol.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.froc.marks import MarkTables
from studyplatform.reading.models import Read, ReadFinding
from studyplatform.studies.lesions import has_lesions
from studyplatform.studies.models import FrocRule, Study, Truth

MARK_FRAME_COLUMNS = (
    "reader",
    "case",
    "arm",
    "session",
    "finding",
    "call",
    "mark",
    "image",
    "x",
    "y",
    "rating",
)
LESION_FRAME_COLUMNS = (
    "finding", "case", "lesion", "image", "x", "y", "radius", "weight", "depth",
)  # fmt: skip


def _mark_rows(study: Study) -> list[tuple[object, ...]]:
    superseded = set(
        Read.objects.filter(
            assignment__session__study=study,
            assignment__session__training=False,
            supersedes__isnull=False,
        )
        .values_list("supersedes_id", flat=True)
        .order_by()
    )
    query = (
        ReadFinding.objects.filter(
            read__assignment__session__study=study, read__assignment__session__training=False
        )
        .exclude(marks=[])
        .order_by("read_id", "finding_type_id")
        .values_list(
            "read_id",
            "read__assignment__reader__code",
            "read__assignment__case__case_id",
            "read__assignment__arm__name",
            "read__assignment__session__number",
            "finding_type__code",
            "present",
            "confidence",
            "marks",
        )
    )
    rows: list[tuple[object, ...]] = []
    for read, reader, case, arm, session, finding, present, confidence, marks in query:
        if read in superseded:
            continue
        for number, mark in enumerate(marks, start=1):
            rating = mark.get("confidence", confidence)
            rows.append(
                (reader, case, arm, session, finding, int(present), number,
                 mark["image"], mark["x"], mark["y"], rating)
            )  # fmt: skip
    return rows


def _lesion_rows(study: Study) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for case, finding, location in (
        Truth.objects.filter(case__study=study, case__training=False, present=True)
        .exclude(location__isnull=True)
        .order_by("case__case_id", "finding_type__code")
        .values_list("case__case_id", "finding_type__code", "location")
    ):
        if not has_lesions(location) or not isinstance(location, list):
            continue
        rows += [
            (finding, case, lesion["lesion"], lesion["image"], lesion["x"], lesion["y"],
             lesion["radius"], lesion.get("weight", math.nan), lesion.get("depth", 0))
            for lesion in location
        ]  # fmt: skip
    return rows


def study_marks(study: Study, *, scored_only: bool = False) -> MarkTables:
    """Every mark of the study's effective reads and every lesion of its truth.

    ``scored_only``: no marks when the truth has no lesion, as nothing could score them (the
    analysis asks so, and a study without locations costs it no scan of the reads).
    """
    distance = study.froc_distance_px if study.froc_rule == FrocRule.DISTANCE else None
    lesions = _lesion_rows(study)
    marks = _mark_rows(study) if lesions or not scored_only else []
    return MarkTables(
        marks=pd.DataFrame(marks, columns=list(MARK_FRAME_COLUMNS)),
        lesions=pd.DataFrame(lesions, columns=list(LESION_FRAME_COLUMNS)),
        rule=study.froc_rule,
        distance=math.nan if distance is None else float(distance),
    )
