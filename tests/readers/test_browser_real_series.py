"""Real CT and MR series, imported as a coordinator imports them, read in headless Chromium.

The values the viewer holds for a slice are the scanner's own (Hounsfield units for CT, as
pydicom reads them from the received file), and the canvas shows them through the DICOM linear
window: the CT scanner's window, the MR series' window from its own values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studyplatform.reading.models import Assignment
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.importing import Upload
from studyplatform.studies.models import Image, Study
from studyplatform.studies.services import import_case
from tests.reading.helpers import PASSWORD, make_study
from tests.studies.import_fixtures import pydicom_file
from tests.studies.real_series import CT_PARTIAL, CT_SERIES, EMRI, MR_SERIES, files, stored_units

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POINTS = ((2, 3), (8, 8), (13, 11), (5, 14))  # image pixels sampled on every slice checked


def _real_study(slug: str, cases: dict[str, list[Path]]) -> Study:
    study = make_study(n_cases=0, n_readers=1, slug=slug)
    for i, (case_id, paths) in enumerate(cases.items()):
        import_case(
            study=study,
            case_id=case_id,
            site_code=("north", "south")[i % 2],
            uploads=[Upload(name=p.name, data=p.read_bytes()) for p in paths],
            truth={"nodule": i == 0, "effusion": i == 1},
        )
    randomize_study(study=study)
    return open_study(study=study)


def _window_gray(value: float, center: float, width: float) -> float:
    """The DICOM linear window (PS3.3 C.11.2.1.2) as the viewer applies it."""
    if value <= center - 0.5 - (width - 1) / 2:
        return 0.0
    if value > center - 0.5 + (width - 1) / 2:
        return 255.0
    return ((value - (center - 0.5)) / (width - 1) + 0.5) * 255


def _open_first_case(page, base: str, username: str) -> Assignment:
    page.set_viewport_size({"width": 1200, "height": 700})
    page.goto(f"{base}/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/")
    page.click("#worklist a.button")
    page.wait_for_selector('#viewer[data-ready="true"]')
    pk = int(page.url.rstrip("/").rsplit("/", 1)[1])
    return Assignment.objects.select_related("case").get(pk=pk)


def _check_slice(
    page, image: Image, expected: np.ndarray, window: tuple[float, float]
) -> list[int]:
    """The sampled points' gray levels, each checked against the window of its value."""
    grays = []
    page.wait_for_function(
        f"() => document.querySelector('#viewer').dataset.slice === '{image.slice_number}'"
        " && document.querySelector('#viewer').dataset.ready === 'true'"
    )
    state: dict[str, Any] = page.evaluate("readingViewer.state()")
    assert (state["windowCenter"], state["windowWidth"]) == pytest.approx(window)
    for x, y in POINTS:
        x, y = x * image.columns // 16, y * image.rows // 16
        value = float(expected[y, x])
        assert page.evaluate(f"readingViewer.storedAt({x}, {y})") == value
        point = page.evaluate(f"readingViewer.canvasPoint({x}, {y})")
        gray = page.evaluate(
            "([x, y]) => Array.from(document.querySelector('#viewer').getContext('2d')"
            ".getImageData(x, y, 1, 1).data)",
            [point["x"], point["y"]],
        )
        assert abs(gray[0] - _window_gray(value, *window)) <= 1, (image, (x, y), value, gray)
        assert gray[0] == gray[1] == gray[2] and gray[3] == 255
        grays.append(gray[0])
    return grays


def _read_two_slices(page, assignment: Assignment, received: dict[str, list[Path]]) -> None:
    case = assignment.case
    series = case.series.get()
    expected = {k: v for p in received[case.case_id] for k, v in stored_units(p).items()}
    slices = list(series.slices.order_by("slice_number"))
    first = slices[0]
    if case.modality == "CT":  # the scanner's window, in HU
        window = (first.window_center - first.display_offset, first.window_width)
    else:  # MR: the series' own window from its values
        assert series.window_center is not None and series.window_width is not None
        window = (series.window_center, series.window_width)
    state = page.evaluate("readingViewer.state()")
    assert (state["slices"], state["stacked"]) == (len(slices), True)
    grays = []
    for image in slices[:2]:
        if image.slice_number > 1:
            page.keyboard.press("ArrowDown")
        grays += _check_slice(page, image, expected[(image.instance_number, image.frame)], window)
    if case.modality == "CT":  # the bone preset (key 6), exact in HU on the real values
        page.keyboard.press("6")
        page.wait_for_function(
            "() => document.querySelector('#viewer').dataset.windowWidth === '2000'"
        )
        image = slices[1]
        grays += _check_slice(
            page, image, expected[(image.instance_number, image.frame)], (500, 2000)
        )
    # Not all black or white: the window maps real values onto gray levels.
    assert [g for g in grays if 0 < g < 255], grays


def test_a_reader_sees_a_real_ct_series_in_hounsfield_units(live_server, page, roles):
    received = {
        "CT-SMARTSCORE": files(CT_SERIES),
        "CT-HEAD": files(CT_PARTIAL)[1:],  # the three contiguous slices
    }
    study = _real_study("realct", received)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    assignment = _open_first_case(page, live_server.url, f"{study.slug}-reader1")

    assert assignment.case.modality == "CT"
    _read_two_slices(page, assignment, received)
    assert errors == []


def test_a_reader_sees_a_real_mr_series_in_its_own_window(live_server, page, roles):
    received = {"MR-ANGIO": files(MR_SERIES), "MR-ENHANCED": [pydicom_file(EMRI[0])]}
    study = _real_study("realmr", received)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    assignment = _open_first_case(page, live_server.url, f"{study.slug}-reader1")

    assert assignment.case.modality == "MR"
    _read_two_slices(page, assignment, received)
    assert errors == []
