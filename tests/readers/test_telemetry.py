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
from tests.readers.hanging_fixtures import hanging_study
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
        ({"on_screen_s": "1 min"}, "on_screen_s must be a number of seconds"),
        ({"on_screen_s": float("inf")}, "on_screen_s must be a finite number"),
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


@pytest.fixture
def two_series() -> Study:
    """Cases of two CT series, laid out side by side by the study's hanging protocol."""
    return hanging_study()


def _two(first: float, second: float, **extra) -> dict:
    return {
        "series": [
            {"series": 1, "slices_viewed": [1, 2], "time_s": first},
            {"series": 2, "slices_viewed": [1], "time_s": second},
        ],
        **extra,
    }


def test_two_series_on_screen_together_each_near_the_span_are_kept(client, two_series):
    # Two viewports for 55 s: both series were on screen nearly all the read, their sum is
    # well over its 60 s. Nothing is capped or scaled; the time on screen is the page's.
    assignment = _opened(client, two_series, "assisted", seconds_ago=60)
    telemetry = _two(55.0, 54.5, on_screen_s=56.0, ai={"overlay_s": 50.0})
    response = _submit(client, assignment, telemetry=telemetry)
    assert response.status_code == 201, response.content
    stored = ReadTelemetry.objects.get(read__assignment=assignment)
    assert [(s["series"], s["time_s"]) for s in stored.series] == [(1, 55.0), (2, 54.5)]
    assert (stored.series_time_s, stored.ai_overlay_s, stored.notes) == (56.0, 50.0, [])
    assert stored.series_time_s <= stored.read.duration_s < 55.0 + 54.5


def test_each_series_is_capped_to_the_span_on_its_own(client, two_series):
    assignment = _opened(client, two_series, "unassisted", seconds_ago=30)
    response = _submit(client, assignment, telemetry=_two(3600.0, 20.0))
    assert response.status_code == 201, response.content
    stored = ReadTelemetry.objects.get(read__assignment=assignment)
    elapsed = stored.read.duration_s
    first, second = (s["time_s"] for s in stored.series)
    # The series within the span keeps its time: nothing is scaled in proportion.
    assert (first, second) == (pytest.approx(elapsed, abs=0.001), 20.0)
    # Without the page's own time on screen (an older page), the sum stands in, capped too.
    assert stored.series_time_s == pytest.approx(elapsed, abs=0.001)
    assert len(stored.notes) == 2
    assert stored.notes[0].startswith("time on series 1 (3600.000 s reported) capped")
    assert stored.notes[1].startswith("time on screen (")


@pytest.mark.parametrize(
    ("on_screen", "held", "bound"),
    [(10.0, 40.0, "the longest series' time"), (90.0, 60.0, "the series' times summed")],
)
def test_time_on_screen_is_held_between_the_longest_series_and_their_sum(
    client, two_series, on_screen, held, bound
):
    assignment = _opened(client, two_series, "unassisted", seconds_ago=120)
    response = _submit(client, assignment, telemetry=_two(40.0, 20.0, on_screen_s=on_screen))
    assert response.status_code == 201, response.content
    stored = ReadTelemetry.objects.get(read__assignment=assignment)
    assert stored.series_time_s == held
    assert stored.notes == [f"time on screen ({on_screen:.3f} s) held to {bound} ({held:.3f} s)"]


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
