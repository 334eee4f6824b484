"""Fuzzing the reading endpoints and the arrival API, and hostile text in every free-text field.

Every request gets a 2xx or a 4xx with a message, never a 500 (the test client re-raises a
view's exception, so a crash fails the test); a refused request changes no stored row; hostile
text that is stored (free text, a draft, a correction's reason) comes back escaped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse
from hypothesis import example, given
from hypothesis import strategies as st

from studyplatform.reading.models import Assignment, Read
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Site, StudyMembership
from studyplatform.studies.services import issue_site_token
from tests.factories import UserFactory
from tests.fuzz.conftest import (
    FUZZ,
    HOSTILE,
    hostile_text,
    refusal_reasons,
    snapshot,
    trial_data,
)
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        hostile_text,
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.one_of(hostile_text, st.sampled_from(["nodule", "effusion"])), children, max_size=4
        )
    ),
    max_leaves=12,
)


def _findings(**nodule: Any) -> dict[str, Any]:
    return {
        "nodule": {"present": True, "confidence": 70, "marks": [], **nodule},
        "effusion": {"present": False, "confidence": 10, "marks": []},
    }


@pytest.fixture
def opened(client):
    """A reader's first assignment, opened: the state in which submit and draft are live."""
    study = make_study(n_cases=2, n_readers=1, with_images=True, with_prereads=True)
    randomize_study(study=study)
    open_study(study=study)
    assignment = Assignment.objects.filter(session__number=1).order_by("position", "step").first()
    client.force_login(assignment.reader.user)
    assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
    return assignment


@pytest.fixture
def opened_unassisted(client):
    """An opened unassisted read whose case the reader has not seen with the AI: correctable.

    The sequential design's first step is unassisted, and its assisted step is not opened yet.
    """
    study = make_study(n_cases=1, n_readers=1, design="sequential", with_images=True)
    randomize_study(study=study)
    open_study(study=study)
    assignment = Assignment.objects.filter(step=1).get()
    client.force_login(assignment.reader.user)
    assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
    return assignment


def _post_json(client, url: str, body: bytes | str) -> Any:
    return client.post(url, body, content_type="application/json")


def _check_refusal(response, before) -> None:
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.json()["error"]
        assert snapshot() == before


body_strategy = st.one_of(
    json_values.map(json.dumps),
    st.builds(
        lambda key, findings, text: json.dumps(
            {"idempotency_key": key, "findings": findings, "free_text": text}
        ),
        st.one_of(hostile_text, st.just("key-0123456789")),
        st.one_of(json_values, st.just(_findings()), st.builds(_findings, confidence=json_values)),
        st.one_of(hostile_text, json_values),
    ),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
)


@FUZZ
@given(body=body_strategy)
@example(body="")
@example(body="[]")
@example(body='{"idempotency_key": "k' + "x" * 100 + '"}')
@example(
    body=json.dumps(
        {
            "idempotency_key": "key-0123456789",
            "findings": _findings(marks=[{"image": 1, "x": 10**30, "y": -1}]),
        }
    )
)
@example(
    body=json.dumps(
        {"idempotency_key": "key-0123456789", "findings": _findings(), "free_text": {"a": 1}}
    )
)
@example(body="[" * 100_000 + "]" * 100_000)
def test_submit_with_any_body_answers_4xx_or_stores_one_read(client, opened, body):
    before = snapshot()
    response = _post_json(client, reverse("readers-submit", args=[opened.pk]), body)
    _check_refusal(response, before)
    assert Read.objects.filter(assignment=opened).count() <= 1


@FUZZ
@given(
    body=st.one_of(
        json_values.map(json.dumps), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
    )
)
@example(body=json.dumps({"notes": "\x00" + SCRIPT}))
@example(body=json.dumps({"x": "y" * 70_000}))
def test_draft_with_any_body_answers_4xx_or_saves_it(client, opened, body):
    before = snapshot()
    response = _post_json(client, reverse("readers-draft", args=[opened.pk]), body)
    _check_refusal(response, before)
    if response.status_code == 200:
        page = client.get(reverse("readers-assignment", args=[opened.pk])).content.decode()
        assert SCRIPT not in page  # the draft comes back inside json_script, escaped


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_free_text_is_stored_or_refused_and_shown_escaped(client, opened, text):
    before = snapshot()
    response = _post_json(
        client,
        reverse("readers-submit", args=[opened.pk]),
        json.dumps(
            {"idempotency_key": "key-0123456789", "findings": _findings(), "free_text": text}
        ),
    )
    _check_refusal(response, before)
    if response.status_code == 201:
        stored = Read.objects.get(assignment=opened).free_text
        assert stored == text
        page = client.get(reverse("readers-correct", args=[opened.pk])).content.decode()
        assert SCRIPT not in page and "<img src=x" not in page


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_correction_reason_is_stored_or_refused_and_shown_escaped(
    client, opened_unassisted, text
):
    opened = opened_unassisted
    submitted = _post_json(
        client,
        reverse("readers-submit", args=[opened.pk]),
        json.dumps({"idempotency_key": "key-0123456789", "findings": _findings()}),
    )
    assert submitted.status_code == 201
    before = snapshot()
    response = client.post(
        reverse("readers-correct", args=[opened.pk]),
        {
            "reason": text,
            "free_text": text,
            "nodule-present": text,
            "nodule-confidence": text,
            "effusion-present": "absent",
            "effusion-confidence": "5",
        },
    )
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert snapshot() == before
        html = response.content.decode()
        assert SCRIPT not in html and "<img src=x" not in html


@pytest.fixture
def arrival(client):
    study = make_study(n_cases=1, n_readers=1, slug="arrive")
    token = issue_site_token(study=study, site=Site.objects.get(code="north"), name="fuzz")
    coordinator = UserFactory(username="arrival-coordinator")
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    return study, token


metadata_strategy = st.one_of(
    json_values.map(json.dumps),
    st.builds(
        lambda case_id, site, truth, modality: json.dumps(
            {"case_id": case_id, "site": site, "truth": truth, "modality": modality}
        ),
        hostile_text,
        st.one_of(st.just("north"), hostile_text),
        json_values,
        st.one_of(hostile_text, st.just("CR")),
    ),
    hostile_text,
)


@FUZZ
@given(
    metadata=metadata_strategy,
    image=st.one_of(st.binary(max_size=256), st.sampled_from([b"", b"\0" * 128 + b"DICM"])),
    name=st.one_of(hostile_text.filter(lambda s: "\x00" not in s and s.strip()), st.just("a.dcm")),
    auth=st.sampled_from(["good", "bad", "none", "garbled", "coordinator"]),
)
@example(
    metadata=json.dumps({"case_id": "C9", "site": "no\x00rth", "modality": "CR"}),
    image=b"\0" * 128 + b"DICM",
    name="a.dcm",
    auth="coordinator",
)
@example(
    metadata=json.dumps({"case_id": "C9", "site": "north", "modality": "C\x00R"}),
    image=b"\0" * 128 + b"DICM",
    name="a\x00.dcm",
    auth="good",
)
def test_arrival_api_answers_4xx_with_a_message_and_stores_no_case(
    client, arrival, metadata, image, name, auth
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    study, token = arrival
    client.logout()
    if auth == "coordinator":
        client.force_login(study.memberships.get().user)
    headers = {
        "good": {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        "bad": {"HTTP_AUTHORIZATION": "Bearer not-a-token"},
        "none": {},
        "coordinator": {},
        "garbled": {"HTTP_AUTHORIZATION": "Basic " + "\u00e9" * 5},
    }[auth]
    before, refused = trial_data(), len(refusal_reasons())
    response = client.post(
        reverse("api-arrive-case", args=[study.slug]),
        {
            "metadata": metadata,
            "images": SimpleUploadedFile(name[:200], image, content_type="application/dicom"),
        },
        **headers,
    )
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response.json()["error"]
    after = trial_data()
    if auth not in ("good", "coordinator"):  # refusals are kept for known callers only
        assert len(refusal_reasons()) == refused
    # A good token records when it was last used and counts the request against its rate
    # limit; nothing else may change.
    for rows in (before, after):
        for row in rows["studies.SiteToken"]:
            for counter in ("last_used_at", "window_start", "window_requests"):
                row.pop(counter)
    assert after == before
