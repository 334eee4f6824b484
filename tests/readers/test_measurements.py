"""Length measurements through the submit URL: stored with the read, their length recomputed from
the series' pixel spacing; malformed or mismatched lines refused with a message, nothing stored;
exported one row a line; never on another reader's or another arm's page."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN, ensure_roles
from studyplatform.audit.models import AuditEvent
from studyplatform.dashboard.exports import build_export
from studyplatform.reading.models import Assignment, Read, ReadMeasurement
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Series, Study, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

FINDINGS = {
    "nodule": {"present": True, "confidence": 80, "marks": []},
    "effusion": {"present": False, "confidence": 10, "marks": []},
}
# Images are 40 columns x 32 rows; rows 0.5 mm apart, columns 0.8 mm.
LINE = {"image": 1, "series": 1, "slice": 1, "x1": 4, "y1": 2, "x2": 34, "y2": 26}
LINE_MM = math.hypot(30 * 0.8, 24 * 0.5)


@pytest.fixture
def study() -> Study:
    study = make_study(n_cases=2, n_readers=2, with_images=True)
    Series.objects.filter(case__study=study).update(pixel_spacing=[0.5, 0.8])
    randomize_study(study=study)
    return open_study(study=study)


def _first(study: Study, reader: int = 1) -> Assignment:
    assignment = (
        Assignment.objects.filter(session__study=study, reader__code=f"{study.slug}-R{reader}")
        .order_by("session__number", "position", "step")
        .first()
    )
    assert assignment is not None
    return assignment


def _open(client, assignment: Assignment) -> str:
    client.force_login(assignment.reader.user)
    response = client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert response.status_code == 200
    return str(response.content.decode())


def _data(page: str) -> dict[str, Any]:
    found = re.search(r'id="reading-data" type="application/json">(.*?)</script>', page, re.S)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _submit(client, assignment: Assignment, measurements: Any) -> Any:
    body = {"idempotency_key": f"key-{assignment.pk:010d}", "findings": FINDINGS}
    body["measurements"] = measurements
    return client.post(
        reverse("readers-submit", args=[assignment.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def test_a_measurement_is_stored_with_the_length_from_the_pixel_spacing(client, study):
    assignment = _first(study)
    _open(client, assignment)
    draft = {"idempotency_key": "k" * 12, "findings": {}, "measurements": [LINE]}
    saved = client.post(
        reverse("readers-draft", args=[assignment.pk]),
        json.dumps(draft),
        content_type="application/json",
    )
    assert saved.status_code == 200
    # The page restores the draft's lines (measure.js reads them from #reading-data).
    assert _data(_open(client, assignment))["draft"]["measurements"] == [LINE]

    response = _submit(client, assignment, [{**LINE, "length_mm": round(LINE_MM, 2)}])
    assert response.status_code == 201, response.content
    stored = ReadMeasurement.objects.get()
    assert (stored.number, stored.image, stored.series, stored.slice) == (1, 1, 1, 1)
    assert (stored.x1, stored.y1, stored.x2, stored.y2) == (4, 2, 34, 26)
    assert stored.length_mm == pytest.approx(LINE_MM) and stored.length_px == pytest.approx(
        math.hypot(30, 24)
    )
    assert (stored.row_spacing, stored.column_spacing) == (0.5, 0.8)
    event = AuditEvent.objects.get(action="read.submit", object_id=str(stored.read_id))
    assert event.after is not None
    assert event.after["measurements"][0]["length_mm"] == pytest.approx(LINE_MM)


def test_without_pixel_spacing_the_length_is_in_pixels(client, study):
    Series.objects.filter(case__study=study).update(pixel_spacing=None)
    assignment = _first(study)
    _open(client, assignment)
    assert _submit(client, assignment, [{**LINE, "length_mm": None}]).status_code == 201
    stored = ReadMeasurement.objects.get()
    assert stored.length_mm is None and stored.length_px == pytest.approx(math.hypot(30, 24))


@pytest.mark.parametrize(
    ("measurements", "message"),
    [
        ([{**LINE, "length_mm": 40.0}], "length_mm 40 does not match 26.83 mm, computed from "
         "image 1's pixel spacing (0.5 x 0.8 mm)"),
        ([{**LINE, "length_mm": None}], "measurement 1: length_mm must be a number"),
        ([{**LINE, "x2": 41, "length_mm": 1.0}], "end (41, 26) is outside image 1 (40 x 32"),
        ([{**LINE, "image": 9, "length_mm": 1.0}], "names image 9, which this case lacks"),
        ([{**LINE, "y1": "2", "length_mm": 1.0}], "x1, y1, x2 and y2 must be numbers"),
        ([{**LINE, "x2": 4, "y2": 2, "length_mm": 0}], "has no length"),
        ([{**LINE, "slice": 2, "length_mm": 1.0}], "names series 1 slice 2, which is not image 1"),
        ([LINE] * 51, "at most 50 lines"),
        ("12 mm", "measurements must be a list"),
        ([7], "measurement 1 must be an object"),
    ],
)  # fmt: skip
def test_malformed_measurements_are_refused_and_nothing_is_stored(
    client, study, measurements, message
):
    assignment = _first(study)
    _open(client, assignment)
    response = _submit(client, assignment, measurements)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Read.objects.exists() and not ReadMeasurement.objects.exists()


def test_a_length_in_mm_where_the_series_has_no_spacing_is_refused(client, study):
    Series.objects.filter(case__study=study).update(pixel_spacing=None)
    assignment = _first(study)
    _open(client, assignment)
    response = _submit(client, assignment, [{**LINE, "length_mm": 26.83}])
    assert response.status_code == 400
    assert "image 1 has no pixel spacing" in response.json()["error"]


def test_measurements_are_exported_and_shown_to_nobody_else(client, study):
    assignment = _first(study)
    _open(client, assignment)
    assert _submit(client, assignment, [{**LINE, "length_mm": LINE_MM}]).status_code == 201
    export = build_export(study, "measurements")
    assert export.filename == f"{study.slug}-measurements.csv"
    rows = list(csv.DictReader(io.StringIO("".join(map(str, export.chunks)))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["reader"], row["case"], row["arm"]) == (
        assignment.reader.code, assignment.case.case_id, assignment.arm.name
    )  # fmt: skip
    assert (row["series"], row["slice"], row["x2"], row["row_spacing_mm"]) == (
        "1",
        "1",
        "34.0",
        "0.5",
    )
    assert float(row["length_mm"]) == pytest.approx(LINE_MM, abs=1e-4)
    # The other reader's page of the same case, and this reader's read of it in the other arm,
    # carry no measurement.
    other = Assignment.objects.get(
        session__study=study, reader__code=f"{study.slug}-R2", case=assignment.case,
        session__number=1,
    )  # fmt: skip
    second = _first(study, reader=2)
    pages = [_open(client, second)]
    if other.pk != second.pk:  # the allocation put the case second: read in order
        assert _submit(client, second, []).status_code == 201
        pages.append(_open(client, other))
    for page in pages:
        draft = _data(page)["draft"]
        assert "measurements" not in draft and "34" not in json.dumps(draft)


def test_the_dashboard_exports_measurements_to_statisticians_not_coordinators(client, study):
    assignment = _first(study)
    _open(client, assignment)
    assert _submit(client, assignment, [{**LINE, "length_mm": LINE_MM}]).status_code == 201
    ensure_roles()
    url = reverse("dashboard:export", args=[study.slug])
    for role, member_role, status in (
        (STATISTICIAN, MemberRole.STATISTICIAN, 200),
        # Lengths by arm are results: coordinators see none while the study runs.
        (COORDINATOR, MemberRole.COORDINATOR, 403),
    ):
        user = UserFactory(username=f"{role}-user", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        StudyMembership.objects.create(study=study, user=user, role=member_role)
        client.force_login(user)
        response = client.post(url, {"format": "measurements"})
        assert response.status_code == status
        if status == 200:
            text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
            assert text.splitlines()[0].startswith("study,reader,case,arm,session,measurement")
            assert len(text.splitlines()) == 2
