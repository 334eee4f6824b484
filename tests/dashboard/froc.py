"""A built study whose readers marked their nodules, with lesion locations in its truth."""

from __future__ import annotations

from typing import Any

from studyplatform.studies.models import Truth
from tests.dashboard.builders import BuiltStudy, build_study

CENTRE = {"image": 1, "x": 100, "y": 100}


def marks_of(row: Any) -> list[dict[str, int]]:
    """A reader who calls the finding marks the lesion's centre (abnormal) or a wrong place,
    and, on every third case, a second wrong place with its own confidence."""
    if not row.call:
        return []
    marks = [dict(CENTRE) if row.truth else {"image": 1, "x": 300, "y": 20}]
    if int(row.case.split("-")[-1]) % 3 == 0:
        marks.append({"image": 1, "x": 10, "y": 200, "confidence": 55})
    return marks


def build_froc_study(settings: Any, slug: str = "sim") -> BuiltStudy:
    """3 readers x 24 cases x 2 arms, nodules only; even-numbered abnormal cases have a second
    lesion that nobody marks."""
    # The builder sets five accounts' passwords; the default hasher would take most of the test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    built = build_study(slug, n_readers=3, n_cases=24, findings=("nodule",), marks=marks_of)
    for truth in Truth.objects.filter(case__study=built.study, present=True):
        truth.location = [{"lesion": 1, **CENTRE, "radius": 8.0}]
        if int(truth.case.case_id.split("-")[-1]) % 2 == 0:
            truth.location.append({"lesion": 2, "image": 1, "x": 400, "y": 400, "radius": 8.0})
        truth.save(update_fields=["location"])
    return built
