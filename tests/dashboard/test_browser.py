"""The dashboard and the report in headless Chromium: no JavaScript error, charts drawn."""

from __future__ import annotations

import pytest

from tests.dashboard.builders import build_study

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_statistician_opens_dashboard_and_report_with_charts_and_no_js_error(
    roles, live_server, page
):
    built = build_study("web", n_readers=4, n_cases=30)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/login/?next=/dashboard/")
    # The report shows results by arm: the statistician's before the lock, not the coordinator's.
    page.fill("#id_username", built.statistician.username)
    page.fill("#id_password", f"pw-{built.statistician.username}")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/dashboard/")

    page.click("#studies a[href='/dashboard/web/']")
    page.wait_for_selector("#progress")
    assert "240 of 240 reads submitted" in page.inner_text("#summary")
    assert page.locator("#washout tbody tr").count() == 8

    page.click("#summary a.button")
    page.wait_for_selector("#report .plot .main-svg", timeout=60_000)
    n_plots = page.locator("#report div.plot").count()
    assert n_plots >= 6
    page.wait_for_function(
        f"() => document.querySelectorAll('#report div.plot .main-svg').length >= {n_plots}"
    )
    assert "AI score drift" in page.inner_text("#section-drift")
    assert errors == []


def test_statistician_downloads_an_export_with_one_click_on_its_form(roles, live_server, page):
    from studyplatform.audit.models import AuditEvent

    built = build_study("web", n_readers=2, n_cases=8)
    page.goto(f"{live_server.url}/login/?next=/dashboard/web/")
    page.fill("#id_username", built.statistician.username)
    page.fill("#id_password", f"pw-{built.statistician.username}")
    page.click("input[type=submit]")
    page.wait_for_selector("#exports")
    with page.expect_download() as download:
        page.click("#exports form.export button:text('Long reads CSV')")
    assert download.value.suggested_filename == "web-long.csv"
    with page.expect_download() as download:
        page.locator("#exports tbody tr").first.locator("button:text('CSV')").click()
    assert download.value.suggested_filename.startswith("web-mrmcaov-")
    formats = [(e.after or {})["format"] for e in AuditEvent.objects.filter(action="study.export")]
    assert formats == ["long", "mrmcaov"]
