"""Fuzzing the dashboard's parameters: any export format, finding or path answers 4xx or 200.

The requests come from the study's statistician (who may export before the lock), so that the
parameters, not the access check, decide the answer; a refused export changes nothing, not even
the audit trail."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group
from hypothesis import example, given
from hypothesis import strategies as st

from studyplatform.accounts.roles import STATISTICIAN, ensure_roles
from studyplatform.studies.models import MemberRole, StudyMembership
from tests.factories import UserFactory
from tests.fuzz.conftest import FUZZ, hostile_text, snapshot
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def statistician(client):
    ensure_roles()
    study = make_study(n_cases=2, n_readers=1, slug="fuzzdash")
    user = UserFactory(username="fuzz-statistician", is_staff=True)
    user.groups.set([Group.objects.get(name=STATISTICIAN)])
    StudyMembership.objects.create(study=study, user=user, role=MemberRole.STATISTICIAN)
    client.force_login(user)
    return client


@FUZZ
@given(
    fmt=st.one_of(st.sampled_from(["long", "mrmcaov", "rjafroc", "imrmc", "xlsx", "json"]),
                  hostile_text),
    finding=st.one_of(st.none(), st.just("nodule"), hostile_text),
    slug=st.one_of(st.just("fuzzdash"), hostile_text),
)  # fmt: skip
@example(fmt="long", finding="=cmd|' /C calc'!A0", slug="fuzzdash")
def test_export_with_any_parameters_answers_without_a_server_error(
    statistician, fmt, finding, slug
):
    before = snapshot()
    path = f"/dashboard/{quote(slug, safe='')}/export/"
    body = {"format": fmt} if finding is None else {"format": fmt, "finding": finding}
    response = statistician.post(path, body)
    assert response.status_code < 500
    if response.status_code >= 400:
        after = snapshot()
        # A json/html export asks for the analysis: its cached result is derived, not trial data.
        for rows in (before, after):
            rows.pop("dashboard.AnalysisResult")
        assert after == before
    elif response.streaming:
        b"".join(response.streaming_content)  # the whole file is produced without an error
