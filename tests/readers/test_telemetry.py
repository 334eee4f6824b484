"""Reading-behaviour telemetry sent with the submission: stored once, validated, capped."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.urls import reverse

from studyplatform.reading.models import Assignment, Read, ReadDraft, ReadTelemetry
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Study
from tests.readers.test_browser_ct_stack import add_ct_series
from tests.readers.test_views import _login, _read_until, _session, _submit
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    study = make_study(n_cases=4, n_readers=1, with_prereads=True, slug="tele")
    add_ct_series(study, slices=12, size=32)
    randomize_study(study=study)
    return open_study(study=study)


def _opened(client, study: Study, arm: str, *, seconds_ago: float = 120) -> Assignment:
    """The reader's first case of ``arm`` in session 1, opened ``seconds_ago`` (earlier cases
    submitted, in the allocated order)."""
    assignment = _read_until(_login(client, study), _session(study), arm)
    assignment.refresh_from_db()
    assert assignment.opened_at is not None
    earlier = assignment.opened_at - timedelta(seconds=seconds_ago)
    Assignment.objects.filter(pk=assignment.pk).update(opened_at=earlier)
    ReadDraft.objects.filter(assignment=assignment).update(started_at=earlier)
    assignment.refresh_from_db()
    return assignment


def _telemetry(**ai) -> dict:
    return {
        "series": [{"series": 1, "slices_viewed": [1, 2, 3, 3, 7], "time_s": 40.5}],
        "ai": ai,
    }


def test_assisted_submit_stores_slices_time_and_overlay(client, study):
    assignment = _opened(client, study, "assisted")
    telemetry = _telemetry(panel_shown=True, overlay_s=22.25, first_view_s=1.5)
    response = _submit(client, assignment, telemetry=telemetry)
    assert response.status_code == 201, response.content
    stored = ReadTelemetry.objects.get(read__assignment=assignment)
    assert stored.series == [
        {"series": 1, "slices_total": 12, "slices_viewed": [1, 2, 3, 7], "time_s": 40.5}
    ]
    assert (stored.slices_viewed, stored.slices_total, stored.series_time_s) == (4, 12, 40.5)
    assert stored.ai_panel_shown and stored.ai_overlay_on
    assert (stored.ai_overlay_s, stored.ai_first_view_s, stored.notes) == (22.25, 1.5, [])


def test_unassisted_submit_stores_no_ai_exposure(client, study):
    assignment = _opened(client, study, "unassisted")
    response = _submit(client, assignment, telemetry=_telemetry())
    assert response.status_code == 201, response.content
    stored = ReadTelemetry.objects.get(read__assignment=assignment)
    assert not stored.ai_overlay_on and stored.ai_overlay_s == 0
    assert stored.ai_first_view_s is None and not stored.ai_panel_shown


@pytest.mark.parametrize(
    "exposure", [{"overlay_s": 3.0}, {"panel_shown": True}, {"first_view_s": 2.0}]
)
def test_unassisted_submit_with_ai_exposure_is_refused_and_nothing_stored(client, study, exposure):
    assignment = _opened(client, study, "unassisted")
    response = _submit(client, assignment, telemetry=_telemetry(**exposure))
    assert response.status_code == 400
    assert "shows no AI output" in response.json()["error"]
    assert not Read.objects.filter(assignment=assignment).exists()
    assert ReadDraft.objects.filter(assignment=assignment).exists()


@pytest.mark.parametrize(
    ("telemetry", "message"),
    [
        ({"series": [{"series": 9, "time_s": 1}]}, "the case has no series 9 (it has 1)"),
        ({"series": [{"series": 1, "slices_viewed": [13]}]}, "series 1 has no slice 13"),
        ({"series": [{"series": 1, "slices_viewed": ["a"]}]}, "slice 'a' is not a slice"),
        ({"series": [{"series": 1, "time_s": -1}]}, "time_s must be a finite number"),
        ({"series": [{"series": 1, "time_s": 1e9}]}, "more than a week"),
        ({"series": [{"series": 1, "time_s": "long"}]}, "must be a number of seconds"),
        ({"series": [{"series": 1}, {"series": 1}]}, "series 1 is reported twice"),
        ({"series": {}}, "series must be a list"),
        ({"series": [], "mouse": 1}, "unknown field(s) 'mouse'"),
        ({"ai": {"overlay_s": -0.5}}, "ai.overlay_s must be a finite number"),
        ({"ai": {"panel_shown": "yes"}}, "ai.panel_shown must be true or false"),
        ([1, 2], "telemetry must be a JSON object"),
    ],
)
def test_malformed_telemetry_is_refused_with_a_message(client, study, telemetry, message):
    assignment = _opened(client, study, "assisted")
    response = _submit(client, assignment, telemetry=telemetry)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("telemetry: ") and message in error, error
    assert not Read.objects.filter(assignment=assignment).exists()


def test_durations_beyond_the_server_time_are_capped_with_notes(client, study):
    assignment = _opened(client, study, "assisted", seconds_ago=30)
    telemetry = {
        "series": [{"series": 1, "slices_viewed": [1], "time_s": 3600}],
        "ai": {"panel_shown": True, "overlay_s": 5000, "first_view_s": 4000},
    }
    assert _submit(client, assignment, telemetry=telemetry).status_code == 201
    read = Read.objects.get(assignment=assignment)
    stored = read.telemetry
    elapsed = read.duration_s
    assert 30 <= stored.series_time_s <= elapsed + 0.001
    assert stored.ai_overlay_s == stored.series_time_s
    assert stored.ai_first_view_s == pytest.approx(elapsed, abs=0.001)
    assert len(stored.notes) == 3 and "capped" in stored.notes[0]


def test_submit_without_telemetry_stores_the_read_without_a_record(client, study):
    assignment = _opened(client, study, "assisted")
    assert _submit(client, assignment).status_code == 201
    assert not ReadTelemetry.objects.filter(read__assignment=assignment).exists()


def test_a_repeated_submit_keeps_the_first_telemetry(client, study):
    assignment = _opened(client, study, "assisted")
    assert _submit(client, assignment, telemetry=_telemetry(overlay_s=1.0)).status_code == 201
    again = _submit(client, assignment, telemetry=_telemetry(overlay_s=9.0))
    assert again.status_code == 200
    assert ReadTelemetry.objects.get(read__assignment=assignment).ai_overlay_s == 1.0


def test_stored_telemetry_cannot_be_changed(client, study):
    assignment = _opened(client, study, "assisted")
    assert _submit(client, assignment, telemetry=_telemetry(overlay_s=1.0)).status_code == 201
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReadTelemetry.objects.filter(read__assignment=assignment).update(ai_overlay_s=0)


def test_the_draft_keeps_telemetry_for_a_reload(client, study):
    assignment = _opened(client, study, "assisted")
    draft = {"idempotency_key": "key-0123456789", "findings": {}, "telemetry": _telemetry()}
    url = reverse("readers-draft", args=[assignment.pk])
    assert client.post(url, json.dumps(draft), content_type="application/json").status_code == 200
    response = client.get(reverse("readers-assignment", args=[assignment.pk]))
    page = response.content.decode()
    start = page.index('id="reading-data" type="application/json">') + 42
    data = json.loads(page[start : page.index("</script>", start)])
    assert data["draft"]["telemetry"] == _telemetry()
    assert data["openedSeconds"] >= 120
    assert "readers/telemetry.js" in page
