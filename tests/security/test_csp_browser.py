"""The Content-Security-Policy holds in a real browser: the reading page, the dashboard and the
analysis report work with no CSP violation in the console (no inline script or style left)."""

from __future__ import annotations

import pytest

from studyplatform.reading.services import open_study, randomize_study
from tests.dashboard.builders import build_study
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _watch(page) -> list[str]:
    """Console errors that report a CSP violation, and uncaught script errors."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def _log_in(page, url: str, username: str, password: str, then: str) -> None:
    page.goto(f"{url}/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}{then}")


def test_reading_page_works_under_the_csp_without_violations(roles, live_server, page):
    study = make_study(n_cases=2, n_readers=1, slug="csp", with_images=True, with_prereads=True)
    randomize_study(study=study)
    open_study(study=study)
    problems = _watch(page)

    response = page.goto(f"{live_server.url}/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    _log_in(page, live_server.url, "csp-reader1", PASSWORD, "/")
    page.click("#worklist a.button")
    page.wait_for_selector('#viewer[data-ready="true"]')
    page.check('input[name="nodule-present"][value="present"]')
    page.wait_for_selector('#report[data-draft-saved="true"]')

    assert problems == []


def test_dashboard_and_report_work_under_the_csp_without_violations(roles, live_server, page):
    built = build_study("csp", n_readers=4, n_cases=30)
    problems = _watch(page)

    # The statistician: the interim report is theirs alone until the study is locked.
    _log_in(page, live_server.url, built.statistician.username,
            f"pw-{built.statistician.username}", "/dashboard/")  # fmt: skip
    page.click("#studies a[href='/dashboard/csp/']")
    page.wait_for_selector("#progress progress.bar")
    page.click("#summary a.button")
    page.wait_for_selector("#report .plot .main-svg", timeout=60_000)

    assert problems == []


def test_admin_pages_work_under_the_csp_without_violations(roles, live_server, page, admin_user):
    problems = _watch(page)

    _log_in(page, live_server.url, "admin", "password", "/admin/")
    page.goto(f"{live_server.url}/admin/studies/study/add/")
    page.wait_for_selector("#study_form")

    assert problems == []
