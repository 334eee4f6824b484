"""Blinding of a CT pre-read's per-slice heatmaps: every slice's heatmap URL answers the
assisted, opened, unsubmitted assignment only; the unassisted arm gets 404 for every slice."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image as PILImage

from studyplatform.prereads.models import PreRead
from tests.security.test_blinding import _leaks, _page_data, _stack, reader, unassisted  # noqa: F401

pytestmark = pytest.mark.django_db

SLICES = 5


def _stacked_preread(case_id: int) -> None:
    """The case's pre-read as a slices model stores it: one map per slice, stacked."""
    _stack(case_id, SLICES)
    strip = np.repeat(np.arange(SLICES, dtype=np.uint8) * 40 + 10, 16 * 16).reshape(-1, 16)
    buffer = io.BytesIO()
    PILImage.fromarray(strip, mode="L").save(buffer, format="PNG")
    preread = PreRead.objects.get(case_id=case_id)
    preread.heatmap.save("stacked.png", ContentFile(buffer.getvalue()), save=False)
    preread.heatmap_slices = SLICES
    preread.save(update_fields=["heatmap", "heatmap_slices"])


def _slice_urls(assignment) -> list[str]:
    positions = sorted(
        assignment.case.images.filter(series__position=1).values_list("position", flat=True)
    )
    assert len(positions) == SLICES
    return [
        reverse("readers-slice-heatmap", kwargs={"pk": assignment.pk, "position": p})
        for p in positions
    ]


def test_the_assisted_reader_gets_each_slices_own_heatmap(reader, world):  # noqa: F811
    _stacked_preread(world.assisted.case_id)
    html = reader.get(reverse("readers-assignment", args=[world.assisted.pk])).content.decode()
    found = __import__("re").search(r'id="ai-data" type="application/json">(.*?)</script>', html)
    assert found
    urls = [item["url"] for item in __import__("json").loads(found.group(1))["sliceHeatmaps"]]
    assert urls == _slice_urls(world.assisted)
    for k, url in enumerate(urls):
        response = reader.get(url)
        assert response.status_code == 200 and response["Cache-Control"] == "no-store"
        with PILImage.open(io.BytesIO(response.content)) as image:
            assert image.size == (16, 16) and image.getpixel((0, 0)) == k * 40 + 10
    # The whole-image heatmap URL is not the way to a slices model's maps.
    assert reader.get(reverse("readers-heatmap", args=[world.assisted.pk])).status_code == 404


def test_every_slice_heatmap_of_an_unassisted_case_is_404_without_ai_output(
    reader,  # noqa: F811
    world,
    unassisted,  # noqa: F811
):
    _stacked_preread(unassisted.case_id)
    html = reader.get(reverse("readers-assignment", args=[unassisted.pk])).content.decode()
    assert _leaks(html, world) == [] and "sliceHeatmaps" not in html
    assert not [k for k in _page_data(html) if "heat" in k.lower()]
    for url in _slice_urls(unassisted):
        response = reader.get(url)
        assert response.status_code == 404, url
        assert _leaks(response.content, world) == []
    # The assisted case, submitted by now, shows its slices' heatmaps no more.
    _stacked_preread(world.assisted.case_id)
    for url in _slice_urls(world.assisted):
        assert reader.get(url).status_code == 404
