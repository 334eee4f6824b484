"""A case's layout from its study's hanging protocols: the issue's examples (CXR PA + lateral,
CT axial + prior, MR T1 + T2), priorities, optional viewports and the fallback; and the reading
page carries the layout (or none: the single default viewport)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.urls import reverse

from studyplatform.reading.models import Assignment
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.hanging import case_layout
from studyplatform.studies.models import Case, HangingProtocol, HangingRule, Image, Series, Study
from studyplatform.studies.selectors import case_series
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


def _series(case: Case, position: int, modality: str, slices: int = 1, **fields: Any) -> None:
    series = Series.objects.create(case=case, position=position, modality=modality, **fields)
    first = case.images.count()
    for index in range(slices):
        Image.objects.create(
            case=case, series=series, position=first + index + 1, slice_number=index + 1,
            original="x.dcm", display="x.png", sha256="0" * 64, rows=8, columns=8,
            window_center=100, window_width=200,
        )  # fmt: skip


def _protocol(study: Study, name: str, *rules: dict[str, Any], **fields: Any) -> HangingProtocol:
    protocol = HangingProtocol.objects.create(study=study, name=name, **fields)
    for viewport, rule in enumerate(rules, start=1):
        HangingRule.objects.create(protocol=protocol, viewport=viewport, **rule)
    return protocol


def _layout(case: Case) -> tuple[str, list[tuple[int, int | None, int | None]]] | None:
    found = case_layout(
        study_id=case.study_id, case_modality=case.modality, series=case_series(case.pk)
    )
    if found is None:
        return None
    return found.protocol, [(v.number, v.series, v.image) for v in found.viewports]


@pytest.fixture
def study() -> Study:
    return make_study(n_cases=1, n_readers=1)


@pytest.fixture
def case(study: Study) -> Case:
    return study.cases.get()


def test_chest_radiograph_pa_and_lateral_side_by_side(study, case):
    case.modality = "DX"
    # The lateral arrives first: the rules place by view position, not by order.
    _series(case, 1, "DX", view_position="LL", body_part="CHEST")
    _series(case, 2, "DX", view_position="PA", body_part="CHEST")
    _protocol(
        study, "CXR PA + lateral",
        {"view_position": "PA", "body_part": "chest"}, {"view_position": "LL"},
        case_modality="DX",
    )  # fmt: skip
    assert _layout(case) == ("CXR PA + lateral", [(1, 2, 2), (2, 1, 1)])


def test_two_views_in_one_series_take_the_first_and_second_image(study, case):
    case.modality = "CR"
    _series(case, 1, "CR", slices=2)
    _protocol(study, "two views", {"modality": "CR"}, {"modality": "CR", "nth": 2})
    assert _layout(case) == ("two views", [(1, 1, 1), (2, 1, 2)])


def test_ct_axial_and_the_prior(study, case):
    case.modality = "CT"
    _series(case, 1, "CT", slices=3, description="SCOUT")  # a stack the rules skip
    _series(case, 2, "CT", slices=4, description="AX LUNG 1.25")
    _series(case, 3, "CT", slices=4, description="AX LUNG prior")
    _protocol(
        study, "CT axial + prior",
        {"modality": "CT", "description": "ax lung"},
        {"modality": "CT", "description": "ax lung", "nth": 2},
    )  # fmt: skip
    assert _layout(case) == ("CT axial + prior", [(1, 2, None), (2, 3, None)])


def test_mr_t1_and_t2_by_regular_expression(study, case):
    case.modality = "MR"
    _series(case, 1, "MR", slices=3, description="AX T2 FLAIR")
    _series(case, 2, "MR", slices=3, description="SAG T1 MPRAGE")
    _series(case, 3, "MR", slices=3, description="AX T1 post")
    _protocol(
        study, "MR T1 + T2",
        {"description": r"^SAG\s+T1\b", "description_match": "regex"},
        {"description": r"T2", "description_match": "regex"},
        case_modality="MR",
    )  # fmt: skip
    assert _layout(case) == ("MR T1 + T2", [(1, 2, None), (2, 1, None)])


def test_first_applicable_protocol_by_priority_else_the_default(study, case):
    case.modality = "CT"
    _series(case, 1, "CT", slices=4, description="AX")
    _protocol(
        study, "needs two", {"modality": "CT"}, {"modality": "CT", "nth": 2}, priority=1
    )  # fmt: skip
    # Only for radiographs: skipped for a CT case whatever its rules.
    _protocol(study, "radiographs", {}, case_modality="DX", priority=2)
    assert _layout(case) is None  # nothing applies: the default single viewport
    _protocol(
        study, "one, maybe two",
        {"modality": "CT"}, {"modality": "CT", "nth": 2, "required": False},
        priority=3,
    )  # fmt: skip
    assert _layout(case) == ("one, maybe two", [(1, 1, None), (2, None, None)])


def _page_data(client, study: Study) -> dict[str, Any]:
    randomize_study(study=study)
    open_study(study=study)
    assignment = Assignment.objects.filter(session__study=study).order_by("position").first()
    assert assignment is not None
    client.force_login(assignment.reader.user)
    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    found = re.search(r'id="reading-data" type="application/json">(.*?)</script>', html, re.S)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_reading_page_carries_the_layout(client, study, case):
    case.modality = "DX"
    case.save(update_fields=["modality"])
    _series(case, 1, "DX", view_position="PA")
    _series(case, 2, "DX", view_position="LATERAL")
    _protocol(study, "PA + lateral", {"view_position": "PA"}, {"view_position": "lateral"})
    data = _page_data(client, study)
    assert data["layout"] == {
        "protocol": "PA + lateral", "rows": 1, "columns": 2,
        "viewports": [
            {"number": 1, "series": 1, "image": 1},
            {"number": 2, "series": 2, "image": 2},
        ],
    }  # fmt: skip
    assert [s["viewPosition"] for s in data["series"]] == ["PA", "LATERAL"]


def test_without_protocols_the_page_has_no_layout(client, study, case):
    _series(case, 1, case.modality)
    assert _page_data(client, study)["layout"] is None
