"""A coordinator runs the trial from the browser: logs in, creates a reader, enrols them, issues
a site token (headless Chromium against the live server)."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Group

from studyplatform.reading.models import Enrolment
from studyplatform.studies.models import MemberRole, SiteToken, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_creates_and_enrols_a_reader_and_issues_a_token(roles, live_server, page):
    study = make_study(n_cases=2, n_readers=0, slug="web")
    coordinator = UserFactory(username="web-coordinator", is_staff=True)
    coordinator.groups.set([Group.objects.get(name="coordinator")])
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "web-coordinator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/dashboard/web/")
    page.click("#manage")
    page.click("a[href='/dashboard/web/manage/readers/'] >> nth=0")

    page.fill("#create #id_username", "dr-web")
    page.fill("#create #id_email", "web@example.org")
    page.fill("#create #id_code", "web-R1")
    page.fill("#create #id_years_experience", "5")
    page.select_option("#create #id_role", "resident")
    page.click("text=Create reader")
    assert "/reset/" in page.inner_text("#password-link")

    page.click("text=enrol them")
    assert page.input_value("#enrol #id_code") == "web-R1"
    page.click("#enrol button")
    assert page.is_visible("tr.enrolment[data-code=web-R1]")
    assert Enrolment.objects.filter(study=study, reader__code="web-R1").exists()

    page.click("a[href='/dashboard/web/manage/tokens/'] >> nth=0")
    page.select_option("#id_site", label="Hospital north")
    page.fill("#id_name", "PACS router")
    page.click("text=Issue token")
    token = page.inner_text("#token").strip()
    stored = SiteToken.objects.get(study=study, name="PACS router")
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    page.goto(f"{live_server.url}/dashboard/web/manage/tokens/")  # the list: not shown again
    assert not page.is_visible("#token") and page.is_visible("tr.token[data-name='PACS router']")
