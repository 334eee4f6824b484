"""A reader reads a CT case in each arm in headless Chromium; the read's telemetry is stored.

The reader scrolls a few slices, toggles the heatmap overlay in the assisted arm (H) and
submits: the stored record names the slices shown, the time on the series, and the overlay's
time on screen (none in the unassisted arm).
"""

from __future__ import annotations

import pytest

from studyplatform.reading.models import ReadTelemetry
from studyplatform.reading.services import open_study, randomize_study
from tests.readers.test_browser_ct_stack import add_ct_series
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study(roles):
    study = make_study(n_cases=2, n_readers=1, slug="cttel", with_prereads=True)
    add_ct_series(study, slices=20, size=32)
    randomize_study(study=study)
    return open_study(study=study)


def _wait_slice(page, number: int) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#viewer').dataset.slice === '{number}'"
        " && document.querySelector('#viewer').dataset.ready === 'true'"
    )


def _read_case(page) -> str:
    """Scroll to slice 4 and back to 2, toggle the overlay where there is one, submit."""
    page.wait_for_selector('#viewer[data-ready="true"]')
    arm = page.get_attribute("#reading", "data-arm") or ""
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, 100)
    _wait_slice(page, 4)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    _wait_slice(page, 2)
    if arm == "assisted":
        page.wait_for_selector('#overlay-toggle[data-loaded="true"]')
        page.wait_for_function("() => document.querySelector('#viewer').dataset.overlay === 'on'")
        page.wait_for_timeout(600)
        page.keyboard.press("h")
        page.wait_for_function("() => document.querySelector('#viewer').dataset.overlay === 'off'")
        page.wait_for_timeout(400)
        page.keyboard.press("h")
        page.wait_for_function("() => document.querySelector('#viewer').dataset.overlay === 'on'")
    page.wait_for_timeout(300)
    for code in ("nodule", "effusion"):
        page.check(f'input[name="{code}-present"][value="absent"]')
        page.fill(f'input[name="{code}-confidence"]', "10")
    url = page.url
    page.click("#submit")
    page.wait_for_function(f"() => window.location.href !== {url!r}")
    return arm


def test_reading_a_ct_case_in_each_arm_stores_its_telemetry(study, live_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "cttel-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.click("#worklist a.button")
    arms = {_read_case(page), _read_case(page)}
    assert arms == {"assisted", "unassisted"}
    assert errors == []

    records = {
        t.read.assignment.arm.name: t
        for t in ReadTelemetry.objects.select_related("read__assignment__arm")
    }
    for arm, record in records.items():
        assert record.series[0]["slices_viewed"] == [1, 2, 3, 4], arm
        assert (record.slices_viewed, record.slices_total) == (4, 20)
        assert 0.5 < record.series_time_s <= record.read.duration_s + 0.001
        assert record.notes == []
    assisted, unassisted = records["assisted"], records["unassisted"]
    assert assisted.ai_panel_shown and assisted.ai_overlay_on
    # On, except for the 0.4 s or more it was toggled off.
    assert 0.3 < assisted.ai_overlay_s < assisted.series_time_s - 0.35
    assert assisted.ai_first_view_s is not None
    assert 0 <= assisted.ai_first_view_s <= assisted.read.duration_s
    assert not unassisted.ai_panel_shown and not unassisted.ai_overlay_on
    assert unassisted.ai_overlay_s == 0 and unassisted.ai_first_view_s is None
