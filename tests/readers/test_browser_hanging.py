"""A study's hanging protocol on a CT case in headless Chromium: two viewports, each with its own
series, scrolled independently, then linked (zoom, pan, and the slice by position along the
normal). The cases are built by :mod:`tests.readers.hanging_fixtures`.
"""

from __future__ import annotations

import pytest

from studyplatform.studies.models import Study
from tests.readers.hanging_fixtures import centre, hanging_study, open_case, viewport, wait
from tests.studies.volume_fixtures import ROD_START

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study(roles: None) -> Study:
    return hanging_study()


def test_two_viewports_scroll_on_their_own_until_linked(study, live_server, page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_case(page, live_server.url)

    one, two = viewport(page, 1), viewport(page, 2)
    assert (one["series"], one["slices"], two["series"], two["slices"]) == (1, 40, 2, 20)
    assert page.get_attribute(".stage", "data-active") == "1"
    assert "CT axial + prior" in page.inner_text("#viewer-status")
    assert "AX PRIOR 5.0" in page.inner_text('.viewport-cell[data-viewport="2"] .cell-head')
    assert page.is_visible("#slice-bar") and page.is_visible("#slice-bar-2")

    # Each viewport scrolls its own series; the other stays where it is.
    x2, y2, _ = centre(page, "viewer-2")
    page.mouse.move(x2, y2)
    for _ in range(3):
        page.mouse.wheel(0, 100)
    wait(page, "viewer-2", "slice", "4")
    assert page.get_attribute(".stage", "data-active") == "2"
    assert page.get_attribute("#viewer", "data-slice") == "1"
    # Keys go to the active viewport only, and so does a window preset.
    page.keyboard.press("PageDown")
    wait(page, "viewer-2", "slice", "14")
    page.keyboard.press("4")
    wait(page, "viewer-2", "windowWidth", "1500")
    assert page.get_attribute("#viewer", "data-window-width") == "400"
    x1, y1, _ = centre(page, "viewer")
    page.mouse.move(x1, y1)
    page.mouse.wheel(0, 100)
    wait(page, "viewer", "slice", "2")
    assert page.get_attribute("#viewer-2", "data-slice") == "14"
    # The values on screen are each slice's own (the phantom's rod moves a column a slice).
    assert page.evaluate(f"readingViewer.viewports()[0].storedAt({ROD_START + 1}, 32)") == 1000
    assert page.evaluate(f"readingViewer.viewports()[1].storedAt({ROD_START + 13}, 32)") == 1000

    # Zoom and pan are per viewport while unlinked.
    page.keyboard.press("+")
    wait(page, "viewer", "zoom", "1.250")
    assert page.get_attribute("#viewer-2", "data-zoom") == "1.000"

    # Linked (K): zoom follows at once, pan and slice position follow from then on.
    page.keyboard.press("k")
    wait(page, "viewer-2", "zoom", "1.250")
    assert page.get_attribute(".stage", "data-linked") == "on"
    page.keyboard.press("ArrowRight")  # pans viewport 1 by 20 px
    wait(page, "viewer-2", "panX", "20")
    # Slice 21 of the thin series is at 50 mm: the prior shows its slice at 50 mm (11).
    page.mouse.move(x1, y1)
    page.keyboard.press("Home")
    for _ in range(20):
        page.keyboard.press("ArrowDown")
    wait(page, "viewer", "slice", "21")
    wait(page, "viewer-2", "slice", "11")
    # Scrolling the prior moves the thin series by position too (55 mm: slice 23).
    page.mouse.move(x2, y2)
    page.mouse.wheel(0, 100)
    wait(page, "viewer-2", "slice", "12")
    wait(page, "viewer", "slice", "23")

    # The link button turns it off again: the viewports are on their own.
    page.click('.toolbar [data-action="link"]')
    assert page.get_attribute(".stage", "data-linked") == "off"
    page.mouse.move(x2, y2)
    page.mouse.wheel(0, 100)
    wait(page, "viewer-2", "slice", "13")
    assert page.get_attribute("#viewer", "data-slice") == "23"
    assert errors == []
