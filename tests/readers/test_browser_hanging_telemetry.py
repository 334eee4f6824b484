"""The reading telemetry of a hanging protocol's two viewports in headless Chromium.

Both viewports are on screen, so both series accrue time while the tab is visible, and neither
while it is hidden; a series shown in both viewports counts once; the heatmap overlay, drawn in
both, counts once per second. The page's clock is Playwright's (``page.clock``), paused and run
forward a few seconds at a time, so the seconds are exact and the test takes no real time for
them. The cases are built by :mod:`tests.readers.hanging_fixtures`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F

from studyplatform.reading.models import Assignment, ReadTelemetry
from studyplatform.studies.models import Study
from tests.readers.hanging_fixtures import hanging_study, open_case

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Hides the tab, or shows it again, as the browser would (the page reads visibilityState).
HIDE = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def study(roles: None) -> Study:
    return hanging_study(with_prereads=True)


def _seconds(page: Any) -> dict[str, float]:
    """The page's telemetry so far: seconds per series, on screen, and of the overlay."""
    snapshot = page.evaluate("readingTelemetry.snapshot()")
    times = {f"series {s['series']}": s["time_s"] for s in snapshot["series"]}
    overlay = snapshot["ai"].get("overlay_s", 0)
    return {**times, "on screen": snapshot["on_screen_s"], "overlay": overlay}


def _gained(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: round(after.get(key, 0) - before.get(key, 0), 3) for key in after}


def _read_case(page: Any, assisted: bool) -> None:
    if assisted:
        page.wait_for_selector('#overlay-toggle[data-loaded="true"]')
        page.wait_for_function("() => document.querySelector('#viewer-2').dataset.overlay === 'on'")
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)  # seconds
    overlay = 3.0 if assisted else 0.0

    start = _seconds(page)
    page.clock.run_for(3000)
    both = _seconds(page)
    # Both series were on screen: each gains the 3 s, the time on screen and the overlay once.
    assert _gained(start, both) == {
        "series 1": 3.0,
        "series 2": 3.0,
        "on screen": 3.0,
        "overlay": overlay,
    }

    page.evaluate(HIDE)
    page.clock.run_for(5000)
    page.evaluate(SHOW)
    assert _seconds(page) == both  # the hidden tab stopped every clock

    # Viewport 2 shows series 1 too (its tab): series 1 is on screen once, series 2 not at all.
    page.evaluate(
        "readingViewer.activate(2);"
        " document.querySelector('#image-tabs .tab[data-view=\"0\"]').click()"
    )
    page.clock.run_for(2000)
    assert page.evaluate("readingViewer.viewports()[1].state().series") == 1
    assert _gained(both, _seconds(page)) == {
        "series 1": 2.0,
        "series 2": 0.0,
        "on screen": 2.0,
        "overlay": 2 * overlay / 3,
    }
    page.clock.resume()


def test_two_viewports_credit_both_series_while_the_tab_is_visible(study, live_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.clock.install()
    open_case(page, live_server.url)
    arms = []
    for _ in range(2):
        page.wait_for_selector('#viewer-2[data-ready="true"]')
        arm = page.get_attribute("#reading", "data-arm") or ""
        arms.append(arm)
        _read_case(page, assisted=arm == "assisted")
        # The server's span is real time, the page's clock ran ahead of it: open the case a
        # minute earlier, so that nothing is capped.
        Assignment.objects.filter(opened_at__isnull=False, reads__isnull=True).update(
            opened_at=F("opened_at") - timedelta(minutes=1)
        )
        for code in ("nodule", "effusion"):
            page.check(f'input[name="{code}-present"][value="absent"]')
            page.fill(f'input[name="{code}-confidence"]', "10")
        url = page.url
        page.click("#submit")
        page.wait_for_function(f"() => window.location.href !== {url!r}")
    assert sorted(arms) == ["assisted", "unassisted"]
    assert errors == []

    for record in ReadTelemetry.objects.select_related("read__assignment__arm"):
        first, second = (s["time_s"] for s in record.series)
        # Series 1 was on screen all along: the images' time on screen is its time, and the
        # series' times together are more than that (and than the 2 s series 2 was not shown).
        assert record.series_time_s == pytest.approx(first, abs=0.002)
        assert first + second > record.series_time_s + 3
        assert first - second >= 2.0
        assert record.notes == []
        if record.read.assignment.arm.name == "assisted":
            assert record.ai_overlay_on
            assert record.ai_overlay_s <= record.series_time_s
