"""The training path in headless Chromium: the coordinator marks training cases on the Training
page; the reader trains in the real viewer (no AI before the unassisted read is submitted, the
AI panel in the assisted step, the truth after each read); the study is randomized and opened;
the reader's first session opens; the coordinator waives another reader's training."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from studyplatform.reading.models import Enrolment, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/")


def _answer_and_submit(page) -> None:
    page.wait_for_selector('#viewer[data-ready="true"]')
    for code in ("nodule", "effusion"):
        page.check(f'input[name="{code}-present"][value="absent"]')
        page.fill(f'input[name="{code}-confidence"]', "10")
    page.click("#submit")
    page.wait_for_selector("#training-feedback")


def test_coordinator_sets_training_reader_trains_then_reads(roles, live_server, browser):
    study = make_study(n_cases=4, n_readers=2, with_images=True, with_prereads=True, slug="tr")
    coordinator = UserFactory(username="tr-coordinator", is_staff=True)
    coordinator.groups.set([Group.objects.get(name="coordinator")])
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    url = live_server.url

    staff = browser.new_context().new_page()
    _login(staff, url, "tr-coordinator")
    staff.goto(f"{url}/dashboard/tr/manage/")
    staff.click("a[href='/dashboard/tr/manage/training/'] >> nth=0")
    staff.check('input[name="training"][value="C003"]')
    staff.click("#save-training-cases")
    assert "1 marked" in staff.inner_text(".messages")
    assert staff.is_checked('input[name="training"][value="C003"]')

    reader = browser.new_context().new_page()
    errors: list[str] = []
    reader.on("pageerror", lambda error: errors.append(str(error)))
    _login(reader, url, "tr-reader1")
    assert "To do before your analysed sessions" in reader.inner_text("#training-list")
    reader.click("text=Start training")
    # Step 1, unassisted: nothing of the AI on the page before the read is submitted.
    reader.wait_for_selector('#viewer[data-ready="true"]')
    assert "training" in reader.inner_text(".case-head")
    html = reader.content()
    assert "ai-panel" not in html and "heatmap" not in html and "0.87" not in html
    _answer_and_submit(reader)
    assert (
        reader.inner_text('tr.feedback-row[data-code="nodule"] td.truth') == "present"
    )  # (3 + 0) % 3
    assert "0.87" in reader.inner_text("#training-ai")  # the AI's answer, after submission
    reader.click("#training-next")
    # Step 2, assisted: the AI panel, as in the assisted arm.
    reader.wait_for_selector("#ai-panel")
    _answer_and_submit(reader)
    reader.click("#training-next")
    reader.wait_for_url(f"{url}/")
    assert "Done" in reader.inner_text("#training-list")
    assert ReadingSession.objects.get(training=True).completed_at is not None

    randomize_study(study=study)
    open_study(study=study)
    reader.goto(f"{url}/")
    first = reader.inner_text("#worklist tr.session >> nth=0")
    assert "Open" in first and "training" not in first
    reader.click("#worklist a.button")
    reader.wait_for_selector('#viewer[data-ready="true"]')
    assert "training" not in reader.inner_text(".case-head")

    other = Enrolment.objects.get(study=study, reader__code="tr-R2")
    staff.goto(f"{url}/dashboard/tr/manage/training/")
    assert staff.get_attribute('tr[data-reader="tr-R2"]', "data-state") == "pending"
    staff.fill('tr[data-reader="tr-R2"] input[name="reason"]', "reads with this viewer daily")
    staff.click('tr[data-reader="tr-R2"] button')
    assert staff.get_attribute('tr[data-reader="tr-R2"]', "data-state") == "waived"
    other.refresh_from_db()
    assert other.training_waiver_reason == "reads with this viewer daily"
    assert errors == []
