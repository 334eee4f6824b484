"""A study whose CT cases have two axial series and a hanging protocol showing them side by side,
and the page helpers of the browser tests that read it."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.core.files.base import ContentFile

from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies import imaging
from studyplatform.studies.models import HangingProtocol, HangingRule, Image, Series, Study
from tests.reading.helpers import PASSWORD, make_study
from tests.studies.volume_fixtures import phantom_slice

SIZE = 64
OFFSET = 1024
SPACING = [0.5, 0.8]  # mm between rows, between columns


def add_series(case: Any, position: int, description: str, slices: int, step: float) -> None:
    series = Series.objects.create(
        case=case, position=position, modality="CT", description=description,
        slice_spacing=step, slice_thickness=step, normal=[0.0, 0.0, 1.0],
        pixel_spacing=SPACING, ordered_by="position",
    )  # fmt: skip
    first = case.images.count()
    for index in range(slices):
        png = imaging.to_display_png16((phantom_slice(index, SIZE) + OFFSET).astype(np.uint16))
        image = Image(
            case=case, series=series, position=first + index + 1, slice_number=index + 1,
            slice_position=step * index, sha256="0" * 64, rows=SIZE, columns=SIZE,
            bits_stored=12, window_center=40 + OFFSET, window_width=400, display_offset=OFFSET,
        )  # fmt: skip
        name = f"{case.case_id}-{position}-{index}"
        image.original.save(f"{name}.dcm", ContentFile(b"-"), save=False)
        image.display.save(f"{name}.png", ContentFile(png), save=False)
        image.save()


def hanging_study(*, with_prereads: bool = False) -> Study:
    """Two CT cases, each a thin axial series (40 x 2.5 mm) and a prior (20 x 5 mm); the
    protocol "CT axial + prior" (1 x 2) shows the first left and the second right. With
    ``with_prereads`` the assisted arm has the AI's pre-read and heatmap overlay."""
    study = make_study(n_cases=2, n_readers=1, slug="hang", with_prereads=with_prereads)
    for case in study.cases.all():
        case.modality = "CT"
        case.save(update_fields=["modality"])
        add_series(case, 1, "AX LUNG 1.25", 40, 2.5)
        add_series(case, 2, "AX PRIOR 5.0", 20, 5.0)
    protocol = HangingProtocol.objects.create(
        study=study, name="CT axial + prior", case_modality="CT", rows=1, columns=2
    )
    HangingRule.objects.create(protocol=protocol, viewport=1, modality="CT", description="lung")
    HangingRule.objects.create(protocol=protocol, viewport=2, modality="CT", nth=2)
    randomize_study(study=study)
    return open_study(study=study)


def open_case(page: Any, url: str) -> None:
    page.set_viewport_size({"width": 1300, "height": 700})
    page.goto(f"{url}/")
    page.fill("#id_username", "hang-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/")
    page.click("#worklist a.button")
    page.wait_for_selector('#viewer[data-ready="true"]')
    page.wait_for_selector('#viewer-2[data-ready="true"]')


def viewport(page: Any, number: int) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(f"readingViewer.viewports()[{number - 1}].state()")
    return state


def wait(page: Any, canvas: str, key: str, value: str) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#{canvas}').dataset.{key} === '{value}'"
        f" && document.querySelector('#{canvas}').dataset.ready === 'true'"
    )


def centre(page: Any, canvas: str) -> tuple[float, float, dict[str, float]]:
    box = page.locator(f"#{canvas}").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box
