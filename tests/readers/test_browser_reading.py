"""A reader reads a crossover session in headless Chromium: viewer, overlay, drafts, blinding.

Screenshots of both arms' reading pages go to the test's temporary folder, and to
docs/screenshots/ when UPDATE_SCREENSHOTS=1 (that is how the README's pictures are made).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage
from playwright.sync_api import Error as PlaywrightError

from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.services import pin_model
from studyplatform.reading.models import Assignment, Read
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies import imaging, phantoms
from studyplatform.studies.models import Image, Series
from tests.factories import AIModelFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# Strings that only AI output contains: the pre-read's probabilities as the page would print
# them, the panel's and the overlay's names, and the heatmap URL.
# Not "probability" alone: the report form states its rating scale in that word.
AI_MARKERS = ("ai-panel", "ai-data", "heatmap", '"probability"', "0.91", "0.07", "grad-cam",
              "ai pre-read", "flagged")  # fmt: skip
TEXT_TYPES = ("text/", "application/json", "javascript")


def _add_phantom_images_and_prereads(study) -> None:
    """Replace the helper's tiny gradients with phantom radiographs and Grad-CAM-like maps."""
    model = AIModelFactory(name="demo-cnn", finding_codes=["nodule", "effusion"], threshold=0.5)
    pin_model(study=study, model=model)
    findings = list(study.finding_types.order_by("order"))
    for number, case in enumerate(study.cases.order_by("case_id"), start=1):
        phantom = phantoms.generate_phantom(
            seed=1000 + number, findings=frozenset({"nodule"}), size=384, modality="DX"
        )
        low, high = np.percentile(phantom.pixels, [1, 99])
        image = Image(
            case=case,
            series=Series.objects.first_of(case),
            position=1,
            sha256="0" * 64,
            rows=384,
            columns=384,
            bits_stored=12,
            window_center=float(round((low + high) / 2)),
            window_width=float(max(1, round(high - low))),
        )
        image.original.save(f"{case.case_id}.dcm", ContentFile(b"-"), save=False)
        image.display.save(
            f"{case.case_id}.png", ContentFile(imaging.to_display_png16(phantom.pixels)), save=False
        )
        image.save()
        row, col = phantom.locations["nodule"]
        yy, xx = np.mgrid[0:96, 0:96] * 4
        heat = np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * 28.0**2))
        buffer = io.BytesIO()
        PILImage.fromarray((heat * 255).astype(np.uint8)).save(buffer, format="PNG")
        preread = PreRead.objects.create(
            case=case, model=model, status=PreReadStatus.DONE, finished_at=timezone.now()
        )
        preread.heatmap.save(f"{case.case_id}-gradcam.png", ContentFile(buffer.getvalue()))
        for finding, probability in zip(findings, (0.9137, 0.0712), strict=True):
            PreReadFinding.objects.create(
                preread=preread, finding_type=finding, probability=probability
            )


@pytest.fixture
def study(roles):
    study = make_study(n_cases=4, n_readers=1, slug="chest", pin=False)
    _add_phantom_images_and_prereads(study)
    randomize_study(study=study)
    return open_study(study=study)


def _contains(text: str, marker: str) -> bool:
    """A probability counts as a number of its own ("10.07" in a timestamp is not 0.07)."""
    if marker[0].isdigit():
        return re.search(rf"(?<![\d.]){re.escape(marker)}(?!\d)", text) is not None
    return marker in text


def _save_screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        # Full colour: a palette would posterize the radiograph's gray levels into bands.
        with PILImage.open(path) as shot:
            shot.convert("RGB").save(target / name, optimize=True)


def _answer(page, code: str, present: bool, confidence: int) -> None:
    """Choose the call and type the rating: the form has no default rating to fall back on."""
    page.check(f'input[name="{code}-present"][value="{"present" if present else "absent"}"]')
    page.fill(f'input[name="{code}-confidence"]', str(confidence))
    assert page.get_attribute(f'input[name="{code}-slider"]', "class") == ""
    assert page.input_value(f'input[name="{code}-slider"]') == str(confidence)


def _refuses_unset_and_contradicting_ratings(page) -> None:
    """A fresh case: no rating is set; an unset or contradicting rating does not submit."""
    for code in ("nodule", "effusion"):
        assert page.input_value(f'input[name="{code}-confidence"]') == ""
        assert "unset" in (page.get_attribute(f'input[name="{code}-slider"]', "class") or "")
    assert "Probability that the finding is present, 0-100" in page.inner_text("#report")
    page.check('input[name="nodule-present"][value="absent"]')
    page.check('input[name="effusion-present"][value="absent"]')
    url = page.url
    page.click("#submit")
    assert page.inner_text("#report-error") == (
        "Set the rating (probability that the finding is present, 0-100) for: Lung nodule, "
        "Pleural effusion; a rating has no default."
    )
    page.fill('input[name="nodule-confidence"]', "90")
    page.fill('input[name="effusion-confidence"]', "10")
    page.click("#submit")
    assert page.inner_text("#report-error") == (
        "Lung nodule: absent with probability 90 contradicts the call; "
        "change the call or the rating."
    )
    assert page.url == url


def _body_of_this_page(response: Any) -> str:
    """A response's text, lower-cased; "" for one that the page before the reload asked for.

    Leaving a page saves its draft and telemetry, and that request can be answered after the
    reload started: Chromium then keeps no body ("navigated away from"), and it was not this
    page's response.
    """
    try:
        return str(response.text()).lower()
    except PlaywrightError as error:
        if "navigated away from" not in str(error):
            raise
        return ""


def _wait_draft_saved(page) -> None:
    page.wait_for_selector('#report[data-draft-saved="true"]')


def test_reader_reads_both_arms_with_viewer_overlay_drafts_and_blinding(
    study, live_server, page, tmp_path
):
    page.set_viewport_size({"width": 1200, "height": 700})
    responses: list = []
    page.on("response", lambda response: responses.append(response))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "chest-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    worklist = page.inner_text("#worklist")
    assert "Open" in worklist and "Locked: opens after you finish session 1" in worklist
    assert "assisted" not in page.content().lower()

    nav_start = len(responses)
    page.click("#worklist a.button")
    seen_arms: list[str] = []
    reloaded = False
    for _ in range(4):
        page.wait_for_selector('#viewer[data-ready="true"]')
        arm = page.get_attribute("#reading", "data-arm")
        seen_arms.append(arm)
        if arm == "unassisted" and "unassisted" not in seen_arms[:-1]:
            # Blinding: nothing of the AI in the DOM or in any response this page loaded.
            # Load the page afresh so that every response recorded from here is this page's.
            nav_start = len(responses)
            page.reload()
            page.wait_for_selector('#viewer[data-ready="true"]')
            _wait_draft_saved(page)
            html = page.content().lower()
            for marker in AI_MARKERS:
                assert not _contains(html, marker), marker
            assert page.locator("#ai-panel, #ai-data, #overlay-toggle").count() == 0
            page_responses = responses[nav_start:]
            assert page_responses
            for response in page_responses:
                assert "/heatmap/" not in response.url
                kind = response.headers.get("content-type", "")
                if response.status < 300 and any(t in kind for t in TEXT_TYPES):
                    body = _body_of_this_page(response)
                    for marker in AI_MARKERS:
                        assert not _contains(body, marker), (marker, response.url)

            # The viewer holds the exact 12-bit stored values (decoded from the 16-bit PNG).
            state = page.evaluate("readingViewer.state()")
            assert state["decodedBy"] == "browser"
            case_id = Assignment.objects.get(pk=page.url.rstrip("/").split("/")[-1]).case.case_id
            stored = imaging.read_png(Image.objects.get(case__case_id=case_id).display.path)
            for y, x in ((0, 0), (200, 150), (383, 383)):
                assert page.evaluate(f"readingViewer.pixelAt({x}, {y})") == int(stored[y, x])
            assert stored.max() > 255
            # Window/level by dragging, zoom and reset by keyboard.
            before = int(page.get_attribute("#viewer", "data-window-width"))
            box = page.locator("#viewer").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx + 120, cy + 40, steps=6)
            page.mouse.up()
            # Functions, not string expressions: the page's CSP forbids eval of a string.
            page.wait_for_function(
                f"() => document.querySelector('#viewer').dataset.windowWidth != '{before}'"
            )
            page.keyboard.press("+")
            page.wait_for_function("() => document.querySelector('#viewer').dataset.zoom > 1")
            page.keyboard.press("r")
            page.wait_for_function(
                f"() => document.querySelector('#viewer').dataset.windowWidth == '{before}'"
            )
            # A mark on the image, in image coordinates.
            page.click('button.mark[data-code="nodule"]')
            page.mouse.click(cx, cy)
            assert page.inner_text('.marks[data-code="nodule"]') == "1 mark"
            _save_screenshot(page, tmp_path, "reading-unassisted.png")
        if arm == "assisted" and "assisted" not in seen_arms[:-1]:
            assert page.is_visible("#ai-panel")
            assert "0.91" in page.inner_text("#ai-panel")
            assert "flagged" in page.inner_text("#ai-panel")
            page.wait_for_selector('#overlay-toggle[data-loaded="true"]')
            page.wait_for_selector('#viewer[data-overlay="on"]')
            page.keyboard.press("h")
            page.wait_for_selector('#viewer[data-overlay="off"]')
            page.click("#overlay-toggle")
            page.wait_for_selector('#viewer[data-overlay="on"]')
            page.eval_on_selector(
                "#overlay-opacity",
                "el => { el.value = 60; el.dispatchEvent(new Event('input')); }",
            )
        if len(seen_arms) == 1:
            _refuses_unset_and_contradicting_ratings(page)
        # Answer; on one case, reload mid-way and find the draft restored.
        _answer(page, "nodule", True, 77)
        if not reloaded:
            page.fill("textarea[name=free_text]", "upper zone, left")
            _wait_draft_saved(page)
            page.wait_for_timeout(700)  # let the debounced save of the last keystroke land
            _wait_draft_saved(page)
            page.reload()
            page.wait_for_selector('#viewer[data-ready="true"]')
            assert page.is_checked('input[name="nodule-present"][value="present"]')
            assert page.input_value('input[name="nodule-confidence"]') == "77"
            assert page.input_value("textarea[name=free_text]") == "upper zone, left"
            reloaded = True
        _answer(page, "effusion", False, 12)
        if arm == "assisted" and not (tmp_path / "reading-assisted.png").exists():
            _save_screenshot(page, tmp_path, "reading-assisted.png")
        url = page.url
        nav_start = len(responses)
        page.click("#submit")
        page.wait_for_url(lambda new, old=url: new != old)

    assert sorted(set(seen_arms)) == ["assisted", "unassisted"]
    assert page.url == f"{live_server.url}/"
    assert "Done" in page.inner_text("#worklist")
    assert not errors, errors
    reads = Read.objects.filter(assignment__session__study=study)
    assert reads.count() == 4
    assert all(r.submitted_at >= r.started_at for r in reads)
    marked = [f.marks for r in reads for f in r.findings.all() if f.marks]
    assert marked and all(0 <= m["x"] < 384 and 0 <= m["y"] < 384 for m in marked[0])
    assert Assignment.objects.filter(session__number=1, opened_at__isnull=True).count() == 0
