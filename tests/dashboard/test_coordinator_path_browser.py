"""The coordinator's whole path in headless Chromium, through pages only: from an empty browser
session, create a reader (who sets a password by the one-time link) and enrol them with
qualifications, mark a training case, the reader trains in the real viewer, randomize and open
in the admin, the reader reads an analysed case, watch progress on the dashboard, amend the
protocol and lock the study with e-signatures, download the submission checklist and the audit
trail. The fixture builds only the draft study (cases, truth, images, pre-reads, pinned model)
and its coordinator account."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from studyplatform.studies.models import MemberRole, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READER_PASSWORD = "a new reader's own passphrase 42"


def _login(page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/")


def _answer_and_submit(page) -> None:
    page.wait_for_selector('#viewer[data-ready="true"]')
    for code in ("nodule", "effusion"):
        page.check(f'input[name="{code}-present"][value="absent"]')
        page.fill(f'input[name="{code}-confidence"]', "10")
    page.click("#submit")


def _admin_action(page, url: str, study_pk: int, action: str) -> str:
    page.goto(f"{url}/admin/studies/study/")
    page.check(f'input[name="_selected_action"][value="{study_pk}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')
    return str(page.inner_text(".messagelist"))


def _done(page, code: str) -> int:
    return int(page.inner_text(f'#progress tr:has(td:text-is("{code}")) td.num >> nth=0'))


def test_coordinator_runs_the_study_from_the_browser(roles, live_server, browser, tmp_path: Path):
    study = make_study(n_cases=4, n_readers=0, with_images=True, with_prereads=True, slug="path")
    coordinator = UserFactory(username="path-coordinator", is_staff=True)
    coordinator.groups.set([Group.objects.get(name="coordinator")])
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    url, pk = live_server.url, study.pk
    errors: list[str] = []

    # 1. Log in, create a reader account, enrol them with their qualifications.
    staff = browser.new_context(accept_downloads=True).new_page()
    _login(staff, url, "path-coordinator")
    staff.goto(f"{url}/dashboard/path/manage/readers/")
    staff.fill("#create #id_username", "dr-path")
    staff.fill("#create #id_email", "path@example.org")
    staff.fill("#create #id_code", "path-R1")
    staff.fill("#create #id_specialty", "thoracic radiology")
    staff.fill("#create #id_years_experience", "7")
    staff.select_option("#create #id_role", "attending")
    staff.click("text=Create reader")
    link = staff.inner_text("#password-link").strip()
    staff.click("text=enrol them")
    staff.click("#enrol button")
    assert staff.is_visible("tr.enrolment[data-code=path-R1]")

    reader = browser.new_context().new_page()
    reader.on("pageerror", lambda error: errors.append(str(error)))
    reader.goto(link)
    reader.fill("#id_new_password1", READER_PASSWORD)
    reader.fill("#id_new_password2", READER_PASSWORD)
    reader.click("input[type=submit]")
    reader.goto(link)  # one-time: used already
    assert reader.is_visible("#invalid-link")
    _login(reader, url, "dr-path", READER_PASSWORD)

    # 2. Mark a training case; the reader trains in the reading page and sees the truth.
    staff.goto(f"{url}/dashboard/path/manage/training/")
    staff.check('input[name="training"][value="C003"]')
    staff.click("#save-training-cases")
    assert "1 marked" in staff.inner_text(".messages")
    reader.goto(f"{url}/")
    reader.click("text=Start training")
    _answer_and_submit(reader)
    reader.wait_for_selector("#training-feedback")
    assert reader.inner_text('tr.feedback-row[data-code="nodule"] td.truth') == "present"
    reader.click("#training-next")
    reader.wait_for_selector("#ai-panel")
    _answer_and_submit(reader)
    reader.wait_for_selector("#training-feedback")
    reader.click("#training-next")
    reader.wait_for_url(f"{url}/")
    assert "Done" in reader.inner_text("#training-list")

    # 3. Randomize and open in the admin; the reader reads one analysed case.
    assert "assignments" in _admin_action(staff, url, pk, "randomize")
    assert "open for reading" in _admin_action(staff, url, pk, "open_for_reading")
    staff.goto(f"{url}/dashboard/path/")
    assert _done(staff, "path-R1") == 0

    reader.goto(f"{url}/")
    reader.click("#worklist a.button")
    reader.wait_for_selector('#viewer[data-ready="true"]')
    assert "training" not in reader.inner_text(".case-head")
    case_url = reader.url
    _answer_and_submit(reader)
    reader.wait_for_url(lambda new: new != case_url)

    # 4. Progress on the dashboard counts the read.
    staff.reload()
    assert _done(staff, "path-R1") == 1

    # 5. Amend the protocol (the washout) with an e-signature.
    staff.goto(f"{url}/admin/studies/study/{pk}/amend-protocol/")
    washout = int(staff.input_value("#id_washout_days"))
    staff.fill("#id_washout_days", str(washout + 7))
    staff.fill("#id_reason", "the sites asked for a longer washout")
    staff.fill("#id_password", PASSWORD)
    staff.click("input[type=submit][value='Sign: amend the protocol']")
    staff.wait_for_url(f"{url}/admin/studies/study/{pk}/change/")
    assert "Version 2 in force" in staff.inner_text("body")

    # 6. Lock with an e-signature (the password asked again); download the exports.
    staff.goto(f"{url}/admin/studies/study/{pk}/lock/")
    staff.fill("#id_password", PASSWORD)
    staff.click("input[type=submit]")
    staff.wait_for_url(f"{url}/admin/studies/study/{pk}/change/")
    staff.goto(f"{url}/dashboard/path/")
    with staff.expect_download() as download:
        staff.click("#exports button:text('Submission checklist')")
    checklist = tmp_path / "checklist.html"
    download.value.save_as(checklist)
    html = checklist.read_text()
    assert "Submission checklist: path" in html and "study state: Locked" in html
    assert "Reader training" in html and "path-R1" in html
    assert 'id="flow"' in html and "<svg" in html

    staff.fill("#audit-export input[name=object]", "study")
    staff.select_option("#audit-export select[name=file]", "html")
    with staff.expect_download() as download:
        staff.click("#audit-export button")
    audit = tmp_path / "audit.html"
    download.value.save_as(audit)
    text = audit.read_text()
    assert "the sites asked for a longer washout" in text and "path-coordinator" in text
    assert errors == []
