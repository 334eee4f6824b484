"""The reader's pages end to end through the test client, each with its forbidden cases."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image as PILImage

from studyplatform.accounts.roles import ensure_roles
from studyplatform.audit.models import AuditEvent
from studyplatform.reading.models import Assignment, Read, ReadDraft, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Study, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

# "probability" alone is no AI marker: the report form states the rating scale in that word.
AI_MARKERS = ("ai-panel", "ai-data", "heatmap", "0.873", "0.87", '"probability"', "ai.js")


@pytest.fixture
def study() -> Study:
    study = make_study(n_cases=6, n_readers=2, with_images=True, with_prereads=True)
    randomize_study(study=study)
    return open_study(study=study)


def _login(client, study: Study, number: int = 1):
    client.force_login(study.enrolments.get(reader__code=f"{study.slug}-R{number}").reader.user)
    return client


def _session(study: Study, number: int = 1, reader: int = 1) -> ReadingSession:
    return ReadingSession.objects.get(
        study=study, number=number, reader__code=f"{study.slug}-R{reader}"
    )


def _first(session: ReadingSession, arm: str | None = None) -> Assignment:
    queryset = session.assignments.order_by("position", "step")
    return (queryset.filter(arm__name=arm) if arm else queryset)[0]


def _answers(present: bool = True) -> dict:
    return {
        "nodule": {"present": present, "confidence": 80, "marks": [{"image": 1, "x": 3, "y": 4}]},
        "effusion": {"present": False, "confidence": 10, "marks": []},
    }


def _submit(client, assignment: Assignment, key: str = "key-0123456789", **extra):
    body = {"idempotency_key": key, "findings": _answers(), "free_text": "ok", **extra}
    return client.post(
        reverse("readers-submit", args=[assignment.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def _read_until(client, session: ReadingSession, arm: str) -> Assignment:
    """Submit the session's cases in order until the next one is in ``arm``; return it opened."""
    for assignment in session.assignments.order_by("position", "step"):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        if assignment.arm.name == arm:
            return assignment
        assert _submit(client, assignment, key=f"key-{assignment.pk:010d}").status_code == 201
    raise AssertionError(f"no {arm} assignment")


# --- Worklist -----------------------------------------------------------------------------


def test_worklist_lists_sessions_with_state_and_no_arm(client, study):
    response = _login(client, study).get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Open" in html and "Locked: opens after you finish session 1" in html
    assert "0 / 6" in html
    assert "assisted" not in html.lower()
    assert reverse("readers-continue", args=[_session(study).pk]) in html
    assert reverse("readers-continue", args=[_session(study, 2).pk]) not in html


def test_worklist_needs_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_draft_study_sessions_are_not_listed(client):
    draft = make_study(n_cases=2, n_readers=1)
    randomize_study(study=draft)
    html = _login(client, draft).get("/").content.decode()
    assert "No reading sessions" in html


# --- Continue and open --------------------------------------------------------------------


def test_continue_goes_to_the_first_case_in_order(client, study):
    session = _session(study)
    response = _login(client, study).get(reverse("readers-continue", args=[session.pk]))
    assert response["Location"] == reverse("readers-assignment", args=[_first(session).pk])


def test_continue_on_another_readers_session_is_404(client, study):
    response = _login(client, study, 2).get(reverse("readers-continue", args=[_session(study).pk]))
    assert response.status_code == 404


def test_opening_stamps_the_server_start_once(client, study):
    assignment = _first(_session(study))
    before = timezone.now()
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    assignment.refresh_from_db()
    opened = assignment.opened_at
    assert opened is not None and opened >= before
    assert ReadDraft.objects.get(assignment=assignment).started_at == opened
    client.get(reverse("readers-assignment", args=[assignment.pk]))
    assignment.refresh_from_db()
    assert assignment.opened_at == opened
    assert _session(study).started_at == opened


def test_another_readers_assignment_is_404(client, study):
    assignment = _first(_session(study, reader=1))
    response = _login(client, study, 2).get(reverse("readers-assignment", args=[assignment.pk]))
    assert response.status_code == 404
    assignment.refresh_from_db()
    assert assignment.opened_at is None


def test_staff_without_reader_profile_gets_403(client, study):
    client.force_login(UserFactory(username="coordinator", is_staff=True))
    assignment = _first(_session(study))
    assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 403
    assert client.get(reverse("readers-heatmap", args=[assignment.pk])).status_code == 403


def test_reading_pages_need_login(client, study):
    assignment = _first(_session(study))
    for name in ("readers-assignment", "readers-heatmap", "readers-correct"):
        response = client.get(reverse(name, args=[assignment.pk]))
        assert response.status_code == 302 and "/login/" in response["Location"]
    response = client.post(reverse("readers-submit", args=[assignment.pk]))
    assert response.status_code == 302


def test_session_two_is_refused_while_session_one_is_unfinished(client, study):
    client = _login(client, study)
    _read_until(client, _session(study), "assisted")
    # Even with its scheduled date passed: a reader never has two sessions of the cases open.
    ReadingSession.objects.filter(pk=_session(study, 2).pk).update(
        available_from=timezone.now() - timedelta(days=1)
    )
    assignment = _first(_session(study, 2))
    response = client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert response.status_code == 403
    assert "after you finish session 1" in response.content.decode()
    assignment.refresh_from_db()
    assert assignment.opened_at is None


def _finish(client, session: ReadingSession) -> None:
    for assignment in session.assignments.order_by("position", "step"):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        assert _submit(client, assignment, key=f"key-{assignment.pk:010d}").status_code == 201


def test_session_two_opens_only_the_washout_after_session_one_is_finished(client, study):
    client = _login(client, study)
    _finish(client, _session(study))
    finished = _session(study).completed_at
    assert finished is not None
    # A scheduled date already past does not shorten the washout after the reader's finish.
    ReadingSession.objects.filter(pk=_session(study, 2).pk).update(
        available_from=timezone.now() - timedelta(days=60)
    )
    home = client.get("/").content.decode()
    opens = finished + timedelta(days=study.washout_days)
    assert f"Locked until {opens:%Y-%m-%d %H:%M} (washout)" in home
    assignment = _first(_session(study, 2))
    response = client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert response.status_code == 403 and "(washout)" in response.content.decode()
    ReadingSession.objects.filter(pk=_session(study).pk).update(
        completed_at=finished - timedelta(days=study.washout_days)
    )
    assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200


def test_a_waiver_opens_session_two_after_session_one_and_is_audited_and_shown(client, study):
    ensure_roles()
    reader = _login(client, study)
    _finish(reader, _session(study))
    coordinator = UserFactory(username="coord", is_staff=True)
    coordinator.groups.set([Group.objects.get(name="coordinator")])
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    staff = Client()
    staff.force_login(coordinator)
    later = _session(study, 2)
    url = reverse("admin:reading_readingsession_changelist")
    refused = staff.post(url, {"action": "waive", "_selected_action": [later.pk], "reason": ""})
    assert refused.status_code == 302 and not ReadingSession.objects.get(pk=later.pk).washout_waived
    staff.post(
        url, {"action": "waive", "_selected_action": [later.pk], "reason": "reader leaves soon"}
    )
    later.refresh_from_db()
    assert later.washout_waived and later.washout_waived_by == coordinator
    event = AuditEvent.objects.get(action="session.washout_waived")
    assert event.reason == "reader leaves soon" and event.actor_id == coordinator.pk
    assignment = _first(later)
    assert reader.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
    dashboard = staff.get(reverse("dashboard:study", args=[study.slug])).content.decode()
    assert "waived by coord: reader leaves soon" in dashboard
    assert 'data-kind="washout_violation"' not in dashboard


def test_a_reader_cannot_waive_a_washout(client, study):
    reader = _login(client, study)
    _finish(reader, _session(study))
    later = _session(study, 2)
    url = reverse("admin:reading_readingsession_changelist")
    reader.post(url, {"action": "waive", "_selected_action": [later.pk], "reason": "me"})
    assert not ReadingSession.objects.get(pk=later.pk).washout_waived


def test_cases_open_only_in_the_allocated_order(client, study):
    session = _session(study)
    second = session.assignments.order_by("position")[1]
    response = _login(client, study).get(reverse("readers-assignment", args=[second.pk]))
    assert response["Location"] == reverse("readers-continue", args=[session.pk])
    second.refresh_from_db()
    assert second.opened_at is None


def test_locked_study_refuses_reading(client, study):
    Study.objects.filter(pk=study.pk).update(state="locked", locked_at=timezone.now())
    assignment = _first(_session(study))
    response = _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    assert response.status_code == 403


# --- Blinding -----------------------------------------------------------------------------


def test_assisted_page_shows_the_ai_panel(client, study):
    assignment = _read_until(_login(client, study), _session(study), "assisted")
    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    assert 'id="ai-panel"' in html and "0.87" in html and "flagged" in html
    assert reverse("readers-heatmap", args=[assignment.pk]) in html


def test_unassisted_page_holds_no_ai_output(client, study):
    assignment = _read_until(_login(client, study), _session(study), "unassisted")
    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    for marker in AI_MARKERS:
        assert marker not in html, marker


def test_heatmap_is_served_only_within_an_opened_assisted_assignment(client, study):
    session = _session(study)
    _login(client, study)
    assisted = session.assignments.filter(arm__name="assisted").order_by("position").first()
    url = reverse("readers-heatmap", args=[assisted.pk])
    assert client.get(url).status_code == 404  # not opened yet
    opened = _read_until(client, session, "assisted")
    response = client.get(reverse("readers-heatmap", args=[opened.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "no-store"
    assert _submit(client, opened).status_code == 201
    assert client.get(reverse("readers-heatmap", args=[opened.pk])).status_code == 404  # submitted


def test_unassisted_heatmap_is_404(client, study):
    opened = _read_until(_login(client, study), _session(study), "unassisted")
    assert client.get(reverse("readers-heatmap", args=[opened.pk])).status_code == 404


def test_other_readers_heatmap_is_404(client, study):
    opened = _read_until(_login(client, study), _session(study), "assisted")
    _login(client, study, 2)
    assert client.get(reverse("readers-heatmap", args=[opened.pk])).status_code == 404


# --- Pixels -------------------------------------------------------------------------------


def test_pixels_are_the_exact_stored_values(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    url = reverse("readers-pixels", args=[assignment.pk, 1])
    png = client.get(url)
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    with PILImage.open(io.BytesIO(b"".join(png.streaming_content))) as image:
        assert image.mode.startswith("I;16") and np.asarray(image)[31, 39] == 31 * 40 + 39
    response = client.get(url + "?format=raw")
    assert response.status_code == 200
    assert (response["X-Image-Rows"], response["X-Image-Columns"]) == ("32", "40")
    assert response["X-Bits-Stored"] == "12"
    values = np.frombuffer(response.content, dtype="<u2").reshape(32, 40)
    assert values[31, 39] == 31 * 40 + 39 and values.max() > 255


def test_pixels_need_an_opened_own_assignment(client, study):
    assignment = _first(_session(study))
    _login(client, study)
    assert client.get(reverse("readers-pixels", args=[assignment.pk, 1])).status_code == 404
    client.get(reverse("readers-assignment", args=[assignment.pk]))
    assert client.get(reverse("readers-pixels", args=[assignment.pk, 9])).status_code == 404
    raw = reverse("readers-pixels", args=[assignment.pk, 9]) + "?format=raw"
    assert client.get(raw).status_code == 404
    _login(client, study, 2)
    assert client.get(reverse("readers-pixels", args=[assignment.pk, 1])).status_code == 404


# --- Draft and submit ---------------------------------------------------------------------


def test_draft_is_saved_and_restored(client, study):
    assignment = _first(_session(study))
    url = reverse("readers-assignment", args=[assignment.pk])
    _login(client, study).get(url)
    draft = {"idempotency_key": "key-abcdefghij", "findings": _answers(), "free_text": "half"}
    response = client.post(
        reverse("readers-draft", args=[assignment.pk]),
        json.dumps(draft),
        content_type="application/json",
    )
    assert response.status_code == 200
    html = client.get(url).content.decode()
    assert "key-abcdefghij" in html and '"free_text": "half"' in html


def test_draft_of_another_reader_is_404(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    _login(client, study, 2)
    response = client.post(
        reverse("readers-draft", args=[assignment.pk]), "{}", content_type="application/json"
    )
    assert response.status_code == 404


def test_bad_draft_is_refused_with_a_message(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    response = client.post(
        reverse("readers-draft", args=[assignment.pk]), "[1]", content_type="application/json"
    )
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


def test_submit_stores_the_read_with_server_times(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    response = _submit(client, assignment)
    assert response.status_code == 201
    assert response.json()["next"] == reverse("readers-continue", args=[assignment.session_id])
    read = Read.objects.get(assignment=assignment)
    assignment.refresh_from_db()
    assert assignment.opened_at is not None
    assert read.started_at == assignment.opened_at <= read.submitted_at
    nodule = read.findings.get(finding_type__code="nodule")
    assert (nodule.present, nodule.confidence, nodule.marks) == (
        True,
        80,
        [{"image": 1, "x": 3, "y": 4}],
    )
    assert not ReadDraft.objects.filter(assignment=assignment).exists()


def test_submit_twice_keeps_the_first(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    first = _submit(client, assignment)
    again = _submit(client, assignment)
    other_key = _submit(client, assignment, key="key-other-tab-000", findings={})
    assert (first.status_code, again.status_code, other_key.status_code) == (201, 200, 200)
    assert first.json()["read"] == again.json()["read"] == other_key.json()["read"]
    assert Read.objects.filter(assignment=assignment).count() == 1


def test_submitted_case_shows_the_submitted_page_without_ai(client, study):
    assignment = _read_until(_login(client, study), _session(study), "assisted")
    _submit(client, assignment)
    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    assert "is submitted" in html and "ai-panel" not in html


def test_incomplete_report_is_refused_and_nothing_stored(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    bad = {
        "nodule": {"present": True, "confidence": 101},
        "effusion": {"present": False, "confidence": 3},
    }
    response = _submit(client, assignment, findings=bad)
    assert response.status_code == 400 and "outside 0-100" in response.json()["error"]
    missing = _submit(client, assignment, findings={"nodule": {"present": True, "confidence": 5}})
    assert "Pleural effusion" in missing.json()["error"]
    outside = _answers()
    outside["nodule"]["marks"] = [{"image": 1, "x": 40, "y": 0}]
    assert "outside the image" in _submit(client, assignment, findings=outside).json()["error"]
    assert not Read.objects.filter(assignment=assignment).exists()


def test_submit_of_another_readers_assignment_is_404(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    assert _submit(_login(client, study, 2), assignment).status_code == 404


def test_finishing_a_session_starts_the_washout_of_the_next(client, study):
    session = _session(study)
    _login(client, study)
    for assignment in session.assignments.order_by("position"):
        client.get(reverse("readers-assignment", args=[assignment.pk]))
        assert _submit(client, assignment, key=f"key-{assignment.pk:010d}").status_code == 201
    session.refresh_from_db()
    assert session.completed_at is not None
    following = _session(study, 2)
    assert following.available_from is not None
    assert following.available_from >= session.completed_at + timedelta(days=28)
    response = client.get(reverse("readers-continue", args=[session.pk]))
    assert response["Location"] == "/"
    assert "Done" in client.get("/").content.decode()


# --- Sequential ---------------------------------------------------------------------------


def test_sequential_reveals_the_ai_only_after_the_unassisted_step(client):
    study = make_study(
        n_cases=2, n_readers=1, design="sequential", with_images=True, with_prereads=True
    )
    randomize_study(study=study)
    open_study(study=study)
    session = _session(study)
    step1, step2 = session.assignments.filter(position=1).order_by("step")
    _login(client, study)
    response = client.get(reverse("readers-assignment", args=[step2.pk]))
    assert response.status_code == 302
    assert client.get(reverse("readers-heatmap", args=[step2.pk])).status_code == 404
    html = client.get(reverse("readers-assignment", args=[step1.pk])).content.decode()
    assert "ai-panel" not in html
    assert _submit(client, step1).status_code == 201
    html = client.get(reverse("readers-assignment", args=[step2.pk])).content.decode()
    assert "ai-panel" in html and "earlier-step" in html
    assert client.get(reverse("readers-heatmap", args=[step2.pk])).status_code == 200


# --- Corrections --------------------------------------------------------------------------


def test_correction_is_a_new_read_with_a_reason(client, study):
    assignment = _read_until(_login(client, study), _session(study), "unassisted")
    _submit(client, assignment)
    url = reverse("readers-correct", args=[assignment.pk])
    assert client.get(url).status_code == 200
    form = {
        "nodule-present": "absent",
        "nodule-confidence": "20",
        "effusion-present": "absent",
        "effusion-confidence": "5",
        "free_text": "second look",
        "reason": "",
    }
    assert client.post(url, form).status_code == 400
    assert client.post(url, {**form, "reason": "misclick"}).status_code == 302
    original, correction = Read.objects.filter(assignment=assignment).order_by("submitted_at")
    assert correction.supersedes == original and correction.correction_reason == "misclick"
    events = AuditEvent.objects.filter(study=study).order_by("sequence")
    submit, correct = (
        e
        for e in events
        if e.action.startswith("read.") and e.object_id in (str(original.pk), str(correction.pk))
    )
    assert submit.after is not None and correct.before is not None and correct.after is not None
    assert submit.action == "read.submit" and submit.after["findings"]["nodule"]["present"] is True
    assert correct.action == "read.correct" and correct.reason == "misclick"
    assert correct.before["findings"]["nodule"]["present"] is True
    assert correct.after["findings"]["nodule"]["present"] is False
    assert original.findings.get(finding_type__code="nodule").present is True
    assert correction.findings.get(finding_type__code="nodule").present is False


def test_correction_of_another_readers_read_is_404(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    _submit(client, assignment)
    assert (
        _login(client, study, 2).get(reverse("readers-correct", args=[assignment.pk])).status_code
        == 404
    )


# --- Speed: few queries -------------------------------------------------------------------


def test_opening_and_submitting_use_few_queries(client, study, django_assert_max_num_queries):
    session = _session(study)
    _login(client, study)
    assignment = _read_until(client, session, "assisted")
    following = session.assignments.filter(position=assignment.position + 1).first()
    _submit(client, assignment)
    # Counts include the session and user look-ups, the session save of every request, and
    # the savepoints the test transaction turns each atomic block into, the study's row lock
    # taken before the opening is written, and the previous session and its waiver that the
    # washout rule reads, the reader's training that the first session waits for (one query),
    # the case's series with their slices (one query, whatever the number of slices), the
    # study's hanging protocols (one), and the next case and its images for the browser's
    # prefetch (two, when there is a next case).
    with django_assert_max_num_queries(25):
        assert client.get(reverse("readers-assignment", args=[following.pk])).status_code == 200
    # Submit: 10 of its own (one the study's row lock, one the reader's training), 5 for the
    # audit trail's append (savepoint, chain lock, head, insert).
    with django_assert_max_num_queries(21):
        assert _submit(client, following, key="key-following-1").status_code == 201


def test_a_mark_may_carry_its_own_confidence_and_a_bad_one_is_refused(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    rated = _answers()
    rated["nodule"]["marks"] = [{"image": 1, "x": 3, "y": 4, "confidence": 65}, {"image": 1,
                                "x": 5, "y": 6}]  # fmt: skip
    bad = _answers()
    bad["nodule"]["marks"] = [{"image": 1, "x": 3, "y": 4, "confidence": 101}]

    refused = _submit(client, assignment, findings=bad)
    accepted = _submit(client, assignment, findings=rated)

    assert refused.status_code == 400
    assert "a mark's confidence must be a whole number 0-100" in refused.json()["error"]
    assert accepted.status_code == 201
    nodule = Read.objects.get(assignment=assignment).findings.get(finding_type__code="nodule")
    assert nodule.marks == [{"image": 1, "x": 3, "y": 4, "confidence": 65}, {"image": 1, "x": 5,
                            "y": 6}]  # fmt: skip


def test_a_mark_on_a_slice_records_its_series_and_slice_and_must_name_its_own(client, study):
    assignment = _first(_session(study))
    _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    on_slice = _answers()
    on_slice["nodule"]["marks"] = [{"image": 1, "series": 1, "slice": 1, "x": 3, "y": 4}]
    wrong = _answers()
    wrong["nodule"]["marks"] = [{"image": 1, "series": 1, "slice": 2, "x": 3, "y": 4}]
    half = _answers()
    half["nodule"]["marks"] = [{"image": 1, "series": 1, "x": 3, "y": 4}]

    assert "not image 1 of this case" in _submit(client, assignment, findings=wrong).json()["error"]
    assert (
        "needs whole-number series and slice"
        in (_submit(client, assignment, findings=half).json()["error"])
    )
    assert _submit(client, assignment, findings=on_slice).status_code == 201
    nodule = Read.objects.get(assignment=assignment).findings.get(finding_type__code="nodule")
    assert nodule.marks == [{"image": 1, "x": 3, "y": 4, "series": 1, "slice": 1}]


def test_the_page_lists_each_series_slices_with_urls_positions_and_offsets(client, study):
    assignment = _first(_session(study))
    html = _login(client, study).get(reverse("readers-assignment", args=[assignment.pk]))
    found = re.search(
        r'id="reading-data" type="application/json">(.*?)</script>', html.content.decode(), re.S
    )
    assert found
    (series,) = json.loads(found.group(1))["series"]
    assert series["position"] == 1
    assert [s["slice"] for s in series["slices"]] == [1]
    (only,) = series["slices"]
    assert only["url"] == reverse(
        "readers-case-pixels", kwargs={"case": assignment.case_id, "position": only["image"]}
    )
    assert set(only) == {"image", "slice", "z", "offset", "url"}
