"""A reader scrolls a 40-slice CT series in headless Chromium: wheel, keys, scroll bar, presets.

The phantom's bone rod moves one column per slice, so the slice on screen can be read back from
the values the viewer holds; the lung preset is checked on the canvas's own pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile

from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies import imaging
from studyplatform.studies.models import Image, Series, Study
from tests.reading.helpers import PASSWORD, make_study
from tests.studies.volume_fixtures import ROD_START, phantom_slice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 40
SIZE = 64
OFFSET = 1024  # derivative = HU + 1024
LUNG = (-600, 1500)


def add_ct_series(study: Study, *, slices: int = SLICES, size: int = SIZE) -> None:
    """Give every case of ``study`` one axial CT series, stored as the import stores one."""
    for case in study.cases.all():
        case.modality = "CT"
        case.save(update_fields=["modality"])
        series = Series.objects.create(
            case=case, position=1, modality="CT", slice_spacing=2.5, slice_thickness=2.5,
            normal=[0.0, 0.0, 1.0], pixel_spacing=[0.7, 0.7], ordered_by="position",
        )  # fmt: skip
        for index in range(slices):
            png = imaging.to_display_png16((phantom_slice(index, size) + OFFSET).astype(np.uint16))
            image = Image(
                case=case, series=series, position=index + 1, slice_number=index + 1,
                slice_position=2.5 * index, sha256="0" * 64, rows=size, columns=size,
                bits_stored=12, window_center=40 + OFFSET, window_width=400,
                display_offset=OFFSET,
            )  # fmt: skip
            image.original.save(f"{case.case_id}-{index}.dcm", ContentFile(b"-"), save=False)
            image.display.save(f"{case.case_id}-{index}.png", ContentFile(png), save=False)
            image.save()


@pytest.fixture
def study(roles):
    study = make_study(n_cases=2, n_readers=1, slug="ct")
    add_ct_series(study)
    randomize_study(study=study)
    return open_study(study=study)


def _shown(page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("readingViewer.state()")
    return state


def _wait_slice(page, number: int) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#viewer').dataset.slice === '{number}'"
        " && document.querySelector('#viewer').dataset.ready === 'true'"
    )
    # The values held are the slice's own: its rod is at column ROD_START + index.
    row = SIZE // 2
    assert page.evaluate(f"readingViewer.storedAt({ROD_START + number - 1}, {row})") == 1000
    assert page.get_attribute("#slice-bar", "data-slice") == str(number)


def _window_gray(hu: int, center: float, width: float) -> float:
    """The DICOM linear window (PS3.3 C.11.2.1.2), in derivative units, as the viewer applies."""
    v, c, w = hu + OFFSET, center + OFFSET, width
    if v <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if v > c - 0.5 + (w - 1) / 2:
        return 255.0
    return ((v - (c - 0.5)) / (w - 1) + 0.5) * 255


def test_reader_scrolls_a_ct_series_and_applies_the_lung_preset(study, live_server, page):
    page.set_viewport_size({"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ct-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.click("#worklist a.button")
    page.wait_for_selector('#viewer[data-ready="true"]')

    state = _shown(page)
    assert (state["series"], state["slice"], state["slices"], state["stacked"]) == (1, 1, 40, True)
    assert page.is_visible("#slice-bar")
    assert page.get_attribute("#slice-bar", "data-slices") == "40"
    _wait_slice(page, 1)

    # The wheel scrolls one slice a notch (and does not zoom).
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(3):
        page.mouse.wheel(0, 100)
    _wait_slice(page, 4)
    assert page.get_attribute("#viewer", "data-zoom") == "1.000"
    page.mouse.wheel(0, -100)
    _wait_slice(page, 3)
    # Keys: arrows one slice, Page Up/Down ten, Home/End the ends.
    page.keyboard.press("ArrowDown")
    _wait_slice(page, 4)
    page.keyboard.press("PageDown")
    _wait_slice(page, 14)
    page.keyboard.press("End")
    _wait_slice(page, 40)
    page.keyboard.press("PageUp")
    _wait_slice(page, 30)
    page.keyboard.press("Home")
    _wait_slice(page, 1)
    page.keyboard.press("ArrowUp")  # stays at the first slice
    _wait_slice(page, 1)
    assert _shown(page)["viewed"] == [1, 2, 3, 4, 14, 30, 40]
    assert page.get_attribute("#slice-bar", "data-viewed") == "7"
    # A click on the scroll bar goes to that part of the series.
    bar = page.locator("#slice-bar").bounding_box()
    page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] * (20.5 / 40))
    _wait_slice(page, 21)

    # The lung preset (key 4), exact in HU: water and air on the canvas itself.
    page.keyboard.press("4")
    page.wait_for_function(
        "() => document.querySelector('#viewer').dataset.windowCenter === '-600'"
        " && document.querySelector('#viewer').dataset.windowWidth === '1500'"
    )
    assert page.get_attribute("#viewer", "data-preset") == "lung"
    for (x, y), hu in (((32, 48), 0), ((1, 1), -1000), ((ROD_START + 20, 31), 1000)):
        assert page.evaluate(f"readingViewer.storedAt({x}, {y})") == hu
        point = page.evaluate(f"readingViewer.canvasPoint({x}, {y})")
        gray = page.evaluate(
            "([x, y]) => Array.from(document.querySelector('#viewer').getContext('2d')"
            ".getImageData(x, y, 1, 1).data)",
            [point["x"], point["y"]],
        )
        expected = _window_gray(hu, *LUNG)
        assert abs(gray[0] - expected) <= 1, (hu, gray, expected)
        assert gray[0] == gray[1] == gray[2] and gray[3] == 255
    # The bone preset shows the same pixels in another window.
    page.click('#stack-presets [data-preset="bone"]')
    page.wait_for_function("() => document.querySelector('#viewer').dataset.windowWidth === '2000'")

    # Cine plays the series and pauses on C.
    page.keyboard.press("c")
    page.wait_for_function("() => Number(document.querySelector('#viewer').dataset.slice) > 23")
    page.keyboard.press("c")
    assert page.get_attribute("#viewer", "data-cine") == "off"

    # A mark on a slice records its series and slice.
    page.keyboard.press("Home")
    _wait_slice(page, 1)
    page.keyboard.press("ArrowDown")
    _wait_slice(page, 2)
    page.click('button.mark[data-code="nodule"]')
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.inner_text('.marks[data-code="nodule"]') == "1 mark"
    assert errors == []
