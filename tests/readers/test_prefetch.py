"""The next case's images, named on the reading page and loadable by case before it is opened:
nothing of the next assignment (its ID, its arm, the AI) reaches the page, and fetching its
images opens nothing."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from studyplatform.accounts.roles import ensure_roles
from studyplatform.audit.models import AuditEvent
from studyplatform.reading.models import Assignment, ReadDraft
from studyplatform.studies.models import Image
from tests.factories import UserFactory
from tests.readers.test_views import _login, _session, _submit, study  # noqa: F401

pytestmark = pytest.mark.django_db


def _ordered(study) -> list[Assignment]:  # noqa: F811
    return list(_session(study).assignments.order_by("position", "step"))


def _data(client, assignment: Assignment) -> dict:
    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    found = re.search(r'id="reading-data" type="application/json">(.*?)</script>', html, re.S)
    assert found
    data: dict = json.loads(found.group(1))
    return data


def _case_url(case_id: int, position: int) -> str:
    return reverse("readers-case-pixels", kwargs={"case": case_id, "position": position})


def test_the_page_names_the_next_cases_images_and_fetching_them_opens_nothing(
    client,
    study,  # noqa: F811
):
    current, following, *_ = _ordered(study)
    _login(client, study)
    data = _data(client, current)
    positions = Image.objects.filter(case_id=following.case_id).order_by("position")
    assert data["prefetch"] == [_case_url(following.case_id, p.position) for p in positions]
    # The page's own images load by case too: the URLs the next page will ask for.
    assert data["images"][0]["pixelsUrl"] == _case_url(current.case_id, 1)
    assert not [url for url in data["prefetch"] if "assignments" in url]
    events = AuditEvent.objects.count()

    for url in data["prefetch"]:
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response["Cache-Control"].endswith("immutable")
        raw = client.get(url + "?format=raw")
        assert raw.status_code == 200 and raw["X-Image-Rows"] == "32"

    following.refresh_from_db()
    assert following.opened_at is None
    assert not ReadDraft.objects.filter(assignment=following).exists()
    assert AuditEvent.objects.count() == events


def test_the_page_is_the_same_whichever_arm_the_next_case_is_in(client, study):  # noqa: F811
    current, following, *_ = _ordered(study)
    _login(client, study)
    before = _data(client, current)
    other = study.arms.exclude(pk=following.arm_id).get()
    Assignment.objects.filter(pk=following.pk).update(arm=other)

    after = _data(client, current)
    # A fresh key per page load until a draft is saved: the rest is the same, byte for byte.
    assert after.pop("idempotencyKey") != before.pop("idempotencyKey")
    # The seconds since the case was opened (the telemetry's clock) move between the two loads.
    assert {after.pop("openedSeconds"), before.pop("openedSeconds")} <= {0.0, 0.1, 0.2, 0.3}
    assert after == before


def test_only_the_next_case_loads_before_it_is_opened(client, study):  # noqa: F811
    current, following, later, *_ = _ordered(study)
    _login(client, study)
    assert client.get(_case_url(current.case_id, 1)).status_code == 404  # nothing open yet
    _data(client, current)
    assert client.get(_case_url(current.case_id, 1)).status_code == 200
    assert client.get(_case_url(following.case_id, 1)).status_code == 200
    assert client.get(_case_url(later.case_id, 1)).status_code == 404  # two ahead
    assert client.get(_case_url(following.case_id, 9)).status_code == 404  # no such image
    # Another reader of the study has opened nothing: none of the cases loads for them.
    _login(client, study, 2)
    assert client.get(_case_url(following.case_id, 1)).status_code == 404
    # Staff who are not readers are refused; the anonymous are sent to log in.
    ensure_roles()
    staff = UserFactory(username="staff-viewer", is_staff=True)
    staff.groups.set([Group.objects.get(name="coordinator")])
    client.force_login(staff)
    assert client.get(_case_url(following.case_id, 1)).status_code == 403
    assert Client().get(_case_url(following.case_id, 1)).status_code == 302


def test_once_submitted_the_next_case_is_the_open_one_and_the_last_prefetches_nothing(
    client,
    study,  # noqa: F811
):
    ordered = _ordered(study)
    _login(client, study)
    for index, assignment in enumerate(ordered):
        data = _data(client, assignment)
        if index + 1 < len(ordered):
            assert data["prefetch"][0] == _case_url(ordered[index + 1].case_id, 1)
        else:
            assert data["prefetch"] == []
        assert _submit(client, assignment, key=f"key-{assignment.pk:010d}").status_code == 201
    # Every case was opened on the way: each still loads (scrolling back costs nothing).
    assert all(client.get(_case_url(a.case_id, 1)).status_code == 200 for a in ordered)
