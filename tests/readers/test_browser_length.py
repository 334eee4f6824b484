"""The length tool in headless Chromium: a line drawn on a CT slice whose rows and columns are
0.5 and 0.8 mm apart reads its length in mm from both spacings, and the submitted read stores it
(series, slice, ends, length recomputed by the server) for the measurements export.

``UPDATE_SCREENSHOTS=1`` saves the page (two viewports, the line) to docs/screenshots/."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pytest

from studyplatform.dashboard.exports import build_export
from studyplatform.reading.models import ReadMeasurement
from studyplatform.studies.models import Study
from tests.readers.hanging_fixtures import centre, hanging_study, open_case, wait
from tests.readers.test_browser_reading import _save_screenshot as save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study(roles: None) -> Study:
    return hanging_study()


def _screen(page: Any, canvas: str, x: float, y: float) -> tuple[float, float]:
    """Where image point (x, y) (continuous coordinates) is on the page, for the mouse."""
    box = page.locator(f"#{canvas}").bounding_box()
    index = 0 if canvas == "viewer" else 1
    # canvasPoint gives pixel centres on the canvas (device pixels; 1 per CSS pixel here).
    origin = page.evaluate(f"readingViewer.viewports()[{index}].canvasPoint(0, 0)")
    far = page.evaluate(f"readingViewer.viewports()[{index}].canvasPoint(40, 40)")
    # The pixels are drawn 0.8 mm wide and 0.5 mm high: each axis has its own scale.
    sx, sy = (far["x"] - origin["x"]) / 40, (far["y"] - origin["y"]) / 40
    return box["x"] + origin["x"] + (x - 0.5) * sx, box["y"] + origin["y"] + (y - 0.5) * sy


def test_length_tool_measures_in_mm_and_the_read_stores_it(study, live_server, page, tmp_path):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_case(page, live_server.url)
    x1, y1, _ = centre(page, "viewer")
    page.mouse.move(x1, y1)
    for _ in range(4):
        page.mouse.wheel(0, 100)
    wait(page, "viewer", "slice", "5")

    page.keyboard.press("l")
    assert page.get_attribute("#viewer", "data-tool") == "length"
    # 30 pixels along x and 40 along y: 30 x 0.8 mm and 40 x 0.5 mm, hypot 31.24 mm (50 px).
    page.mouse.move(*_screen(page, "viewer", 10, 10))
    page.mouse.down()
    page.mouse.move(*_screen(page, "viewer", 25, 30), steps=4)
    page.mouse.move(*_screen(page, "viewer", 40, 50), steps=4)
    page.mouse.up()
    lines = page.evaluate("readingMeasure.lines()")
    assert len(lines) == 1
    line = lines[0]
    assert (line["series"], line["slice"], line["image"]) == (1, 5, 5)
    assert abs(line["x2"] - line["x1"] - 30) < 0.5 and abs(line["y2"] - line["y1"] - 40) < 0.5
    expected = math.hypot((line["x2"] - line["x1"]) * 0.8, (line["y2"] - line["y1"]) * 0.5)
    assert line["lengths"][1] == pytest.approx(expected, abs=1e-9)
    assert abs(expected - math.hypot(24, 20)) < 0.5
    assert page.inner_text("#measurements") == f"Measurements: {expected:.1f} mm"
    save_screenshot(page, tmp_path, "reading-hanging-length.png")
    # Drawing does not change the window (the tool has the left drag).
    assert page.get_attribute("#viewer", "data-window-width") == "400"
    page.keyboard.press("l")
    assert page.get_attribute("#viewer", "data-tool") == ""

    for code, present, confidence in (("nodule", True, 80), ("effusion", False, 10)):
        page.check(f'input[name="{code}-present"][value="{"present" if present else "absent"}"]')
        page.fill(f'input[name="{code}-confidence"]', str(confidence))
    url = page.url
    page.click("#submit")
    page.wait_for_url(lambda new: new != url)

    stored = ReadMeasurement.objects.get()
    assert (stored.series, stored.slice, stored.image) == (1, 5, 5)
    assert (stored.row_spacing, stored.column_spacing) == (0.5, 0.8)
    assert stored.length_mm == pytest.approx(expected, abs=1e-6)
    assert stored.read.assignment.reader.code == "hang-R1"
    export = build_export(study, "measurements")
    rows = list(csv.DictReader(io.StringIO("".join(map(str, export.chunks)))))
    assert len(rows) == 1 and rows[0]["case"] == stored.read.assignment.case.case_id
    assert float(rows[0]["length_mm"]) == pytest.approx(expected, abs=1e-3)
    assert errors == []
