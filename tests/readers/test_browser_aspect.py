"""Rectangular pixels in headless Chromium: an MR image of 64 x 64 pixels, each 1.0 mm wide and
2.0 mm high (PixelSpacing [2.0, 1.0]), is drawn twice as tall as wide; a mark clicked on it, a
length line drawn across it and the AI heatmap over it all land on the image pixels under the
pointer, and what is saved is in image pixels, as the server checks it.

Screen points are computed from the rectangle the image covers on the canvas (read from the
canvas's own pixels), not from the viewer's own mapping, so a click mapped with the wrong
aspect lands on the wrong pixel.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from studyplatform.prereads.models import PreRead
from studyplatform.reading.models import ReadFinding, ReadMeasurement
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies import imaging
from studyplatform.studies.models import Image, Series, Study
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZE = 64
SPACING = [2.0, 1.0]  # mm between rows, between columns: a pixel twice as high as wide
HOT = (40, 8, 8)  # the heatmap's hot square: image pixels x 40..47, y 8..15


def _heatmap() -> bytes:
    """A gray map at half the image's resolution, as a model's map often is, hot on HOT."""
    values = np.zeros((SIZE // 2, SIZE // 2), dtype=np.uint8)
    x, y, side = (v // 2 for v in HOT)
    values[y : y + side, x : x + side] = 230
    buffer = io.BytesIO()
    PILImage.fromarray(values, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def study(roles: None) -> Study:
    study = make_study(n_cases=2, n_readers=1, slug="aspect", with_prereads=True)
    png = imaging.to_display_png16(np.full((SIZE, SIZE), 1000, dtype=np.uint16))
    for case in study.cases.all():
        case.modality = "MR"
        case.save(update_fields=["modality"])
        series = Series.objects.create(
            case=case, position=1, modality="MR", description="COR T2", pixel_spacing=SPACING
        )
        image = Image(
            case=case, series=series, position=1, slice_number=1, sha256="0" * 64,
            rows=SIZE, columns=SIZE, bits_stored=12, window_center=1000, window_width=1000,
        )  # fmt: skip
        image.original.save(f"{case.case_id}.dcm", ContentFile(b"-"), save=False)
        image.display.save(f"{case.case_id}.png", ContentFile(png), save=False)
        image.save()
    for preread in PreRead.objects.filter(case__study=study):
        preread.heatmap.save("hot.png", ContentFile(_heatmap()), save=False)
        preread.save(update_fields=["heatmap"])
    randomize_study(study=study)
    return open_study(study=study)


class Drawn:
    """Where the image lies on the canvas (device pixels), found from the canvas's pixels: the
    canvas is black around the image, the image itself mid-gray."""

    def __init__(self, page: Any) -> None:
        found = page.evaluate(
            """() => {
              const canvas = document.querySelector('#viewer');
              const {width, height} = canvas;
              const px = canvas.getContext('2d').getImageData(0, 0, width, height).data;
              let left = canvas.width, right = -1, top = canvas.height, bottom = -1;
              for (let y = 0; y < canvas.height; y++) {
                for (let x = 0; x < canvas.width; x++) {
                  if (px[4 * (y * canvas.width + x) + 1] < 40) continue;
                  left = Math.min(left, x); right = Math.max(right, x);
                  top = Math.min(top, y); bottom = Math.max(bottom, y);
                }
              }
              return {left, top, width: right - left + 1, height: bottom - top + 1,
                      dpr: window.devicePixelRatio, box: canvas.getBoundingClientRect().toJSON()};
            }"""
        )
        self.left, self.top = found["left"], found["top"]
        self.width, self.height = found["width"], found["height"]
        self.dpr, self.box = found["dpr"], found["box"]

    def canvas(self, x: float, y: float) -> tuple[int, int]:
        """The canvas pixel at image point (x, y), continuous coordinates."""
        return (
            int(self.left + x * self.width / SIZE),
            int(self.top + y * self.height / SIZE),
        )

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """The page point (for the mouse) at image point (x, y)."""
        return (
            self.box["x"] + (self.left + x * self.width / SIZE) / self.dpr,
            self.box["y"] + (self.top + y * self.height / SIZE) / self.dpr,
        )

    def rgb(self, page: Any, x: float, y: float) -> tuple[int, int, int]:
        """The colour drawn at image point (x, y)."""
        return _canvas_rgb(page, *self.canvas(x, y))


def _canvas_rgb(page: Any, x: int, y: int) -> tuple[int, int, int]:
    rgba = page.evaluate(
        "([x, y]) => Array.from(document.querySelector('#viewer').getContext('2d')"
        ".getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return rgba[0], rgba[1], rgba[2]


def _next_frame(page: Any) -> None:
    """Wait for the viewer's next frame: a redraw asked for so far is on the canvas then."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(null)))")


def _coloured(rgb: tuple[int, int, int]) -> bool:
    return max(rgb) - min(rgb) > 40


def _open_next(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    page.click("#worklist a.button")
    page.wait_for_selector('#viewer[data-ready="true"]')


def _submit(page: Any) -> None:
    for code, answer, confidence in (("nodule", "present", 80), ("effusion", "absent", 10)):
        page.check(f'input[name="{code}-present"][value="{answer}"]')
        page.fill(f'input[name="{code}-confidence"]', str(confidence))
    url = page.url
    page.click("#submit")
    page.wait_for_url(lambda new: new != url)


def _check_heatmap(page: Any, drawn: Drawn) -> None:
    """The hot square is coloured over its own image pixels, and only there."""
    page.wait_for_selector('#overlay-toggle[data-loaded="true"]')
    # Said by the frame that draws the overlay, once the map is set.
    page.wait_for_function("() => document.querySelector('#viewer').dataset.overlay === 'on'")
    x, y, side = HOT
    for inside in ((x + 1.5, y + 1.5), (x + side - 1.5, y + side - 1.5), (x + 4, y + 4)):
        assert _coloured(drawn.rgb(page, *inside)), inside
    # Two pixels beyond each edge: drawn with square pixels the map would cover some of these.
    for outside in ((x + 4, y - 2), (x + 4, y + side + 2), (x - 2, y + 4), (x + side + 2, y + 4)):
        assert not _coloured(drawn.rgb(page, *outside)), outside
    assert not _coloured(drawn.rgb(page, x + 4, y + 3 * side))


def test_rectangular_pixels_are_drawn_at_their_aspect_and_read_back_in_pixels(
    study, live_server, page
):
    page.set_viewport_size({"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "aspect-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    arms = []
    for number in range(2):  # session 1 holds one case of each arm
        _open_next(page, live_server.url)
        assisted = page.locator("#overlay-toggle").count() > 0
        arms.append("assisted" if assisted else "unassisted")
        drawn = Drawn(page)
        # 64 pixels of 1 mm across, 64 of 2 mm down: twice as tall as wide, and fitted.
        assert drawn.height / drawn.width == pytest.approx(2, rel=0.02), vars(drawn)
        assert drawn.height > 300
        if assisted:
            _check_heatmap(page, drawn)
        if number:
            _submit(page)
            continue

        # A mark clicked at the centre of pixel (10, 50) is stored at (10, 50), and drawn there.
        page.keyboard.press("m")
        page.mouse.click(*drawn.screen(10.5, 50.5))
        assert page.inner_text('.marks[data-code="nodule"]') == "1 mark"
        page.keyboard.press("m")
        page.keyboard.press("m")  # marking off again (nodule, effusion, off)
        _next_frame(page)
        cx, cy = drawn.canvas(10.5, 50.5)
        # Its ring (9 px about the pixel's centre) is in the nodule's yellow.
        ring = [
            _canvas_rgb(page, cx + dx, cy) for dx in range(int(7 * drawn.dpr), int(12 * drawn.dpr))
        ]
        assert any(r > 200 and g > 150 and b < 120 for r, g, b in ring), ring

        # A line from (5, 10) to (25, 40): 20 columns of 1 mm and 30 rows of 2 mm.
        page.keyboard.press("l")
        page.mouse.move(*drawn.screen(5, 10))
        page.mouse.down()
        page.mouse.move(*drawn.screen(15, 25), steps=3)
        page.mouse.move(*drawn.screen(25, 40), steps=3)
        page.mouse.up()
        page.keyboard.press("l")
        _next_frame(page)
        # Drawn through the pixels it was drawn across (its middle is at (15, 25)).
        mx, my = drawn.canvas(15, 25)
        middle = [_canvas_rgb(page, mx + dx, my) for dx in range(-2, 3)]
        assert any(g > 180 and b > 140 and r < 150 for r, g, b in middle), middle
        (line,) = page.evaluate("readingMeasure.lines()")
        ends = (line["x1"], line["y1"], line["x2"], line["y2"])
        assert ends == pytest.approx((5, 10, 25, 40), abs=0.3)
        expected = math.hypot((ends[2] - ends[0]) * 1.0, (ends[3] - ends[1]) * 2.0)
        assert line["lengths"][1] == pytest.approx(expected, abs=1e-9)
        assert expected == pytest.approx(math.hypot(20, 60), abs=0.5)

        # Zoom about the cursor keeps the pixel under it where it was, at the pixels' aspect.
        before = page.evaluate("readingViewer.canvasPoint(40, 20)")
        page.mouse.move(*drawn.screen(40.5, 20.5))
        page.keyboard.down("Control")
        page.mouse.wheel(0, -100)
        page.keyboard.up("Control")
        page.wait_for_function("() => document.querySelector('#viewer').dataset.zoom === '1.150'")
        after = page.evaluate("readingViewer.canvasPoint(40, 20)")
        assert abs(after["x"] - before["x"]) <= 1 and abs(after["y"] - before["y"]) <= 1
        far = page.evaluate("readingViewer.canvasPoint(50, 30)")
        assert (far["y"] - after["y"]) / (far["x"] - after["x"]) == pytest.approx(2, rel=0.02)
        _submit(page)

        # The server accepted both, in image pixels and mm from the stored spacing.
        nodule = ReadFinding.objects.filter(finding_type__code="nodule")
        marks = [m for finding in nodule for m in finding.marks]
        assert [(m["image"], m["x"], m["y"]) for m in marks] == [(1, 10, 50)]
        stored = ReadMeasurement.objects.get()
        assert (stored.image, stored.row_spacing, stored.column_spacing) == (1, 2.0, 1.0)
        assert (stored.x1, stored.y1, stored.x2, stored.y2) == pytest.approx(ends, abs=1e-6)
        assert stored.length_mm == pytest.approx(expected, abs=0.01)
    assert sorted(arms) == ["assisted", "unassisted"]
    assert errors == []
