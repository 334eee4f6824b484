"""Reads as evidence, through the reader's pages: a rating with a meaning and no default, the
contradiction rule, honest corrections (never after the AI was seen, flagged in the export), and
nothing written once the study is locked."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from analysis.longreads import READER_COLUMNS, TELEMETRY_COLUMNS
from studyplatform.accounts.roles import COORDINATOR
from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.signatures import lock_study
from studyplatform.reading.models import Assignment, Read, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Study, StudyMembership
from studyplatform.studies.services.protocol import store_protocol_version
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = pytest.mark.django_db

SCALE = "Probability that the finding is present, 0-100"


def _study(rule: str = "reject", design: str = "crossover") -> Study:
    study = make_study(n_cases=4, n_readers=1, design=design, with_images=True)
    Study.objects.filter(pk=study.pk).update(contradiction_rule=rule)
    study.refresh_from_db()
    randomize_study(study=study)
    return open_study(study=study)


def _reader(client, study: Study):
    client.force_login(study.enrolments.get().reader.user)
    return client


def _answers(nodule: tuple[bool, int | None] = (True, 80)) -> dict:
    present, confidence = nodule
    item: dict = {"present": present, "marks": []}
    if confidence is not None:
        item["confidence"] = confidence
    return {"nodule": item, "effusion": {"present": False, "confidence": 10, "marks": []}}


def _submit(client, assignment: Assignment, findings: dict | None = None, **extra):
    body = {
        "idempotency_key": f"key-{assignment.pk:012d}",
        "findings": _answers() if findings is None else findings,
        **extra,
    }
    return client.post(
        reverse("readers-submit", args=[assignment.pk]),
        json.dumps(body),
        content_type="application/json",
    )


def _ordered(study: Study, number: int) -> list[Assignment]:
    return list(
        Assignment.objects.filter(session__study=study, session__number=number)
        .select_related("arm", "case")
        .order_by("position", "step")
    )


def _read_first(client, study: Study, arm: str, findings: dict | None = None) -> Assignment:
    """Submit session 1 in order up to and including its first ``arm`` case; return that one."""
    for assignment in _ordered(study, 1):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        mine = assignment.arm.name == arm
        response = _submit(client, assignment, findings if mine else None)
        assert response.status_code == 201, response.content
        if mine:
            return assignment
    raise AssertionError(f"no {arm} case in session 1")


def _open_in_session_2(client, study: Study, case_id: int) -> Assignment:
    """Finish session 1, pass the washout, read session 2 in order up to the case's assignment."""
    for assignment in _ordered(study, 1):
        if not assignment.reads.exists():
            client.get(reverse("readers-assignment", args=[assignment.pk]))
            assert _submit(client, assignment).status_code == 201
    past = timezone.now() - timedelta(days=study.washout_days + 1)
    ReadingSession.objects.filter(study=study, number=1).update(completed_at=past)
    ReadingSession.objects.filter(study=study, number=2).update(available_from=past)
    for assignment in _ordered(study, 2):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        if assignment.case_id == case_id:
            return assignment
        assert _submit(client, assignment).status_code == 201
    raise AssertionError("the case is not in session 2")


def _correction(nodule: str = "present", confidence: str = "95", **extra: str) -> dict:
    return {
        "nodule-present": nodule,
        "nodule-confidence": confidence,
        "effusion-present": "absent",
        "effusion-confidence": "10",
        "free_text": "second look",
        "reason": "wrong side",
        **extra,
    }


# --- The rating scale ------------------------------------------------------------------------


def test_report_form_states_the_scale_and_starts_with_no_rating(client):
    study = _study()
    first = _ordered(study, 1)[0]
    html = _reader(client, study).get(reverse("readers-assignment", args=[first.pk])).content
    page = html.decode()
    assert page.count(f'<span class="scale small">{SCALE}</span>') == 2
    for code in ("nodule", "effusion"):
        number = page.split(f'name="{code}-confidence"')[0].rsplit("<input", 1)[1]
        assert "value=" not in number  # the rating field starts empty: "not set"
        assert f'name="{code}-slider"' in page
    assert '"ratingScale": "Probability that the finding is present, 0-100"' in page
    assert '"contradictionRule": "reject"' in page


def test_submit_without_a_rating_is_refused_and_nothing_is_stored(client):
    study = _study()
    first = _ordered(study, 1)[0]
    _reader(client, study).get(reverse("readers-assignment", args=[first.pk]))
    for unset in (None, ""):
        findings = _answers((True, None))
        if unset is not None:
            findings["nodule"]["confidence"] = unset
        response = _submit(client, first, findings)
        assert response.status_code == 400
        assert response.json()["error"] == (
            "Lung nodule: set the probability (0-100) that the finding is present; "
            "it has no default"
        )
    no_call = _answers()
    del no_call["nodule"]["present"]
    assert "choose present or absent" in _submit(client, first, no_call).json()["error"]
    assert not Read.objects.exists()


def test_submit_by_someone_who_is_not_a_reader_is_forbidden(client):
    study = _study()
    first = _ordered(study, 1)[0]
    _reader(client, study).get(reverse("readers-assignment", args=[first.pk]))
    client.force_login(UserFactory(username="someone-else"))
    assert _submit(client, first).status_code == 403  # not a reader at all
    assert not Read.objects.exists()


# --- The contradiction rule -----------------------------------------------------------------


def test_reject_rule_refuses_a_call_that_contradicts_its_rating(client):
    study = _study("reject")
    first = _ordered(study, 1)[0]
    _reader(client, study).get(reverse("readers-assignment", args=[first.pk]))
    for confirm in (False, True):  # a confirmation does not help under "reject"
        response = _submit(client, first, _answers((False, 90)), confirm_contradictions=confirm)
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == (
            "Lung nodule: absent with probability 90 contradicts the call; "
            "change the call or the rating"
        )
        assert body["confirm"] is False
        assert body["contradictions"] == [
            {"code": "nodule", "name": "Lung nodule", "present": False, "confidence": 90}
        ]
    present_low = _submit(client, first, _answers((True, 49)))
    assert "present with probability 49 contradicts" in present_low.json()["error"]
    assert not Read.objects.exists()
    # 50 agrees with either call.
    assert _submit(client, first, _answers((False, 50))).status_code == 201
    assert Read.objects.get().contradiction_confirmed is False


def test_confirm_rule_stores_a_contradiction_only_once_the_reader_confirms_it(client):
    study = _study("confirm")
    first, second = _ordered(study, 1)[:2]
    _reader(client, study).get(reverse("readers-assignment", args=[first.pk]))
    html = client.get(reverse("readers-assignment", args=[first.pk])).content.decode()
    assert '"contradictionRule": "confirm"' in html
    refused = _submit(client, first, _answers((False, 90)))
    assert refused.status_code == 400 and refused.json()["confirm"] is True
    assert "Lung nodule: absent with probability 90 contradicts the call" in refused.json()["error"]
    assert not Read.objects.exists()
    stored = _submit(client, first, _answers((False, 90)), confirm_contradictions=True)
    assert stored.status_code == 201
    read = Read.objects.get(assignment=first)
    assert read.contradiction_confirmed is True
    nodule = read.findings.get(finding_type__code="nodule")
    assert (nodule.present, nodule.confidence) == (False, 90)
    # A consistent read is not marked, even when the page sends the flag.
    client.get(reverse("readers-assignment", args=[second.pk]))
    assert _submit(client, second, confirm_contradictions=True).status_code == 201
    assert Read.objects.get(assignment=second).contradiction_confirmed is False


def test_a_read_records_the_protocol_version_in_force(client):
    study = _study()
    first, second = _ordered(study, 1)[:2]
    _reader(client, study).get(reverse("readers-assignment", args=[first.pk]))
    assert _submit(client, first).status_code == 201
    with transaction.atomic():  # as the amendment service does, after the study guard
        store_protocol_version(
            study=study,
            actor=UserFactory(username="amender"),
            reason="second site",
            action=Action.PROTOCOL_AMEND,
        )
    client.get(reverse("readers-assignment", args=[second.pk]))
    assert _submit(client, second).status_code == 201
    versions = [Read.objects.get(assignment=a).protocol_version for a in (first, second)]
    assert versions == [1, 2]


# --- Corrections ----------------------------------------------------------------------------


def test_correcting_an_unassisted_read_after_the_ai_was_shown_is_refused(client):
    """A reader reads a case unassisted, opens it with the AI in session 2, then tries to
    correct the unassisted read: refused, and nothing is stored."""
    study = _study()
    _reader(client, study)
    unassisted = _read_first(client, study, "unassisted", _answers((False, 10)))
    assisted = _open_in_session_2(client, study, unassisted.case_id)
    assert assisted.arm.shows_ai
    url = reverse("readers-correct", args=[unassisted.pk])
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "can no longer be corrected" in html and "already seen the AI&#x27;s output" in html
    assert 'id="correct-form"' not in html
    response = client.post(url, _correction("present", "95"))
    assert response.status_code == 409
    assert "already seen the AI&#x27;s output" in response.content.decode()
    assert Read.objects.filter(assignment=unassisted).count() == 1
    assert not AuditEvent.objects.filter(action=Action.READ_CORRECT).exists()
    nodule = Read.objects.get(assignment=unassisted).findings.get(finding_type__code="nodule")
    assert (nodule.present, nodule.confidence) == (False, 10)


def test_correcting_the_unassisted_step_after_the_assisted_step_opened_is_refused(client):
    study = _study(design="sequential")
    step1, step2 = _ordered(study, 1)[:2]
    _reader(client, study).get(reverse("readers-assignment", args=[step1.pk]))
    assert _submit(client, step1).status_code == 201
    url = reverse("readers-correct", args=[step1.pk])
    assert 'id="correct-form"' in client.get(url).content.decode()  # the AI not seen yet
    assert client.get(reverse("readers-assignment", args=[step2.pk])).status_code == 200
    assert client.post(url, _correction()).status_code == 409
    assert Read.objects.filter(assignment=step1).count() == 1


def test_a_correction_before_any_ai_exposure_is_flagged_in_the_long_export(client, tmp_path):
    study = _study()
    _reader(client, study)
    unassisted = _read_first(client, study, "unassisted", _answers((False, 10)))
    url = reverse("readers-correct", args=[unassisted.pk])
    assert 'id="correct-form"' in client.get(url).content.decode()
    assert client.post(url, _correction("present", "95")).status_code == 302
    original, correction = Read.objects.filter(assignment=unassisted).order_by("pk")
    assert correction.supersedes == original and correction.protocol_version == 1
    following = _ordered(study, 1)[_ordered(study, 1).index(unassisted) + 1]
    client.get(reverse("readers-assignment", args=[following.pk]))
    assert _submit(client, following).status_code == 201  # an uncorrected read beside it
    out = Path(tmp_path) / "long.csv"
    call_command("export", study.slug, "--format", "long", "-o", str(out))
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[:16] == [
        "study", "reader", "case", "arm", "session", "finding", "truth", "call", "confidence",
        "ai_probability", "site", "modality", "manufacturer", "started_at", "submitted_at",
        "duration_s",
    ]  # fmt: skip
    assert header[16:20] == ["corrected", "original_call", "original_confidence", "corrected_at"]
    assert header[20:] == [*TELEMETRY_COLUMNS, *READER_COLUMNS]
    read_rows = {
        r["finding"]: r
        for r in rows
        if r["case"] == unassisted.case.case_id and r["arm"] == "unassisted"
    }
    nodule, effusion = read_rows["nodule"], read_rows["effusion"]
    assert (nodule["call"], nodule["confidence"], nodule["corrected"]) == ("1", "95", "1")
    assert (nodule["original_call"], nodule["original_confidence"]) == ("0", "10")
    assert nodule["submitted_at"].startswith(original.submitted_at.strftime("%Y-%m-%dT%H:%M:%S"))
    corrected_at = correction.submitted_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert nodule["corrected_at"].startswith(corrected_at)
    # The whole read was corrected: its unchanged finding is flagged too.
    assert (effusion["corrected"], effusion["call"], effusion["original_call"]) == ("1", "0", "0")
    others = [r for r in rows if r not in read_rows.values()]
    assert others and all(r["corrected"] == "0" and r["corrected_at"] == "" for r in others)
    assert all(r["original_call"] == r["call"] for r in others)


def test_a_correction_follows_the_contradiction_rule(client):
    study = _study("confirm")
    _reader(client, study)
    unassisted = _read_first(client, study, "unassisted")
    url = reverse("readers-correct", args=[unassisted.pk])
    asked = client.post(url, _correction("absent", "90"))
    assert asked.status_code == 400
    html = asked.content.decode()
    assert "absent with probability 90 contradicts the call" in html
    assert 'name="confirm_contradictions"' in html
    assert 'value="90"' in html  # what the reader typed is kept
    assert Read.objects.filter(assignment=unassisted).count() == 1
    confirmed = client.post(url, _correction("absent", "90", confirm_contradictions="on"))
    assert confirmed.status_code == 302
    correction = Read.objects.get(assignment=unassisted, supersedes__isnull=False)
    assert correction.contradiction_confirmed is True


def test_a_correction_needs_a_call_and_a_rating(client):
    study = _study()
    _reader(client, study)
    unassisted = _read_first(client, study, "unassisted")
    url = reverse("readers-correct", args=[unassisted.pk])
    no_rating = client.post(url, _correction("present", ""))
    assert no_rating.status_code == 400 and "has no default" in no_rating.content.decode()
    no_call = _correction()
    del no_call["nodule-present"]
    assert "choose present or absent" in client.post(url, no_call).content.decode()
    assert Read.objects.filter(assignment=unassisted).count() == 1


# --- Nothing after the lock -----------------------------------------------------------------


def _coordinator(study: Study):
    user = UserFactory(username="coordinator", is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR))
    StudyMembership.objects.create(study=study, user=user, role="coordinator")
    return user


def test_a_lock_signed_after_the_page_loaded_refuses_every_reader_write(client, roles):
    study = _study()
    _reader(client, study)
    done = _read_first(client, study, "unassisted")
    following = next(a for a in _ordered(study, 1) if not Read.objects.filter(assignment=a))
    assert client.get(reverse("readers-assignment", args=[following.pk])).status_code == 200
    lock_study(study=study, user=_coordinator(study), password=PASSWORD)
    before = Read.objects.count()

    submit = _submit(client, following)
    assert submit.status_code == 409 and "locked" in submit.json()["error"]
    draft = client.post(
        reverse("readers-draft", args=[following.pk]),
        json.dumps({"free_text": "late"}),
        content_type="application/json",
    )
    assert draft.status_code == 409 and "locked" in draft.json()["error"]
    correction = client.post(reverse("readers-correct", args=[done.pk]), _correction())
    assert correction.status_code == 409 and "locked" in correction.content.decode()
    assert Read.objects.count() == before
    assert following.draft.data.get("free_text") != "late"
