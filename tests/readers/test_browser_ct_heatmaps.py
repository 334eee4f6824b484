"""The per-slice heatmaps of a CT pre-read in headless Chromium: each slice shows its own map in
the assisted arm; the unassisted page asks for no heatmap at all.

Slice k's map is hot on one square only, a different square per slice, so the colour on the
canvas says which map is drawn over which slice.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from studyplatform.prereads.models import PreRead
from studyplatform.reading.services import open_study, randomize_study
from tests.readers.test_browser_ct_stack import SIZE, add_ct_series
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 6
SQUARE = 8


def _hot_square(index: int) -> tuple[int, int]:
    """The top-left corner (x, y) of slice ``index``'s hot square."""
    return 4 + 9 * index, 4 + 4 * index


def _stacked_heatmaps() -> bytes:
    """One gray map per slice, stacked top to bottom, as a slices model stores them."""
    maps = np.zeros((SLICES, SIZE, SIZE), dtype=np.uint8)
    for index in range(SLICES):
        x, y = _hot_square(index)
        maps[index, y : y + SQUARE, x : x + SQUARE] = 230
    buffer = io.BytesIO()
    PILImage.fromarray(maps.reshape(SLICES * SIZE, SIZE), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def study(roles):
    study = make_study(n_cases=2, n_readers=1, slug="cthm", with_prereads=True)
    add_ct_series(study, slices=SLICES)
    for preread in PreRead.objects.filter(case__study=study):
        preread.heatmap.save("stacked.png", ContentFile(_stacked_heatmaps()), save=False)
        preread.heatmap_slices = SLICES
        preread.save(update_fields=["heatmap", "heatmap_slices"])
    randomize_study(study=study)
    return open_study(study=study)


def _canvas_rgb(page, x: int, y: int) -> tuple[int, int, int]:
    point = page.evaluate(f"readingViewer.canvasPoint({x}, {y})")
    rgba = page.evaluate(
        "([x, y]) => Array.from(document.querySelector('#viewer').getContext('2d')"
        ".getImageData(x, y, 1, 1).data)",
        [point["x"], point["y"]],
    )
    return rgba[0], rgba[1], rgba[2]


def _coloured(rgb: tuple[int, int, int]) -> bool:
    return max(rgb) - min(rgb) > 40


def _show_slice(page, number: int) -> None:
    page.evaluate(f"readingViewer.showSlice({number})")
    page.wait_for_function(
        f"() => document.querySelector('#viewer').dataset.slice === '{number}'"
        " && document.querySelector('#viewer').dataset.ready === 'true'"
    )


def _submit(page) -> None:
    """Submit the open read as the report form does: both findings absent."""
    status = page.evaluate(
        """async () => {
          const data = JSON.parse(document.getElementById('reading-data').textContent);
          const findings = {};
          for (const f of data.findings) {
            findings[f.code] = {present: false, confidence: 10, marks: []};
          }
          const response = await fetch(data.submitUrl, {
            method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json',
                      'X-CSRFToken': document.getElementById('csrf').value},
            body: JSON.stringify({idempotency_key: data.idempotencyKey, findings, free_text: ''}),
          });
          return response.status;
        }"""
    )
    assert status == 201


def _check_assisted(page) -> None:
    page.wait_for_selector('#overlay-toggle[data-loaded="true"]')
    assert page.is_checked("#overlay-toggle")
    for number in (1, 4, SLICES):
        _show_slice(page, number)
        for index in range(SLICES):
            x, y = _hot_square(index)
            rgb = _canvas_rgb(page, x + SQUARE // 2, y + SQUARE // 2)
            # Only this slice's own square is coloured: the map of the slice on screen.
            assert _coloured(rgb) is (index == number - 1), (number, index, rgb)
    # H turns the overlay off: the slice's square is gray again.
    page.keyboard.press("h")
    x, y = _hot_square(SLICES - 1)
    # The canvas is read once the frame without the overlay is drawn (it says so).
    page.wait_for_function("() => document.querySelector('#viewer').dataset.overlay === 'off'")
    assert not _coloured(_canvas_rgb(page, x + SQUARE // 2, y + SQUARE // 2))


def test_each_ct_slice_shows_its_own_heatmap_and_only_in_the_assisted_arm(study, live_server, page):
    page.set_viewport_size({"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "cthm-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    arms = []
    for _ in range(2):  # session 1 holds one case of each arm, in the reader's own order
        opened = len(requested)
        page.click("#worklist a.button")
        page.wait_for_selector('#viewer[data-ready="true"]')
        data = json.loads(page.inner_text("#reading-data"))
        if page.locator("#overlay-toggle").count():
            arms.append("assisted")
            _check_assisted(page)
        else:
            arms.append("unassisted")
            assert page.locator("#ai-data").count() == 0
            for number in range(1, SLICES + 1):
                _show_slice(page, number)
            page.wait_for_timeout(300)
            assert not [url for url in requested[opened:] if "heatmap" in url], requested
        assert data["images"], data
        _submit(page)
        page.goto(f"{live_server.url}/")
    assert sorted(arms) == ["assisted", "unassisted"]
    assert errors == []
