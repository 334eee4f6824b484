"""Blinding of a ``volume`` model's pre-read: its per-slice heatmaps, computed by the real task
from a registered 3-D model, reach the assisted arm's opened case only; every slice heatmap URL
of an unassisted case answers 404 and its page names no AI output."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image as PILImage

from studyplatform.prereads.models import AIModel, PreRead
from studyplatform.prereads.services import pin_model, request_prereads
from studyplatform.prereads.tasks import run_preread_batch
from studyplatform.reading.models import Assignment, Reader
from studyplatform.reading.services import open_study, randomize_study
from tests.prereads.test_volume_model import register
from tests.prereads.volume_models import TinyVolumeCNN
from tests.readers.test_browser_ct_stack import add_ct_series
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

SLICES = 6


def _slice_urls(assignment: Assignment) -> list[str]:
    positions = assignment.case.images.filter(series__position=1).order_by("slice_number")
    return [
        reverse("readers-slice-heatmap", kwargs={"pk": assignment.pk, "position": p})
        for p in positions.values_list("position", flat=True)
    ]


def test_a_volume_preread_shows_its_slice_heatmaps_in_the_assisted_arm_only(
    tmp_path: Path, settings
):
    settings.DEBUG = False
    study = make_study(n_cases=4, n_readers=1, pin=False, slug="vol-blind")
    study.washout_days = 0
    study.save(update_fields=["washout_days"])
    add_ct_series(study, slices=SLICES, size=32)
    register(tmp_path, TinyVolumeCNN())
    model = AIModel.objects.get(name="tiny-volume")
    pin_model(study=study, model=model)
    request_prereads(study=study, model=model)
    done = run_preread_batch(preread_ids=list(PreRead.objects.values_list("pk", flat=True)))
    assert done["done"] == 4 and set(PreRead.objects.values_list("heatmap_slices", flat=True)) == {
        SLICES
    }
    randomize_study(study=study)
    open_study(study=study)
    client = Client()
    client.force_login(Reader.objects.get(code="vol-blind-R1").user)

    seen = set()
    ordered = Assignment.objects.filter(session__study=study).order_by(
        "session__number", "position", "step"
    )
    for assignment in ordered:
        urls = _slice_urls(assignment)
        assert len(urls) == SLICES
        for url in urls:  # before the case is opened: nothing, whatever its arm
            assert client.get(url).status_code == 404
        html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
        arm = assignment.arm.name
        seen.add(arm)
        if arm == "assisted":
            found = re.search(r'id="ai-data" type="application/json">(.*?)</script>', html)
            assert found and "tiny-volume" in html
            served = [item["url"] for item in json.loads(found.group(1))["sliceHeatmaps"]]
            assert served == urls
            for url in urls:
                response = client.get(url)
                assert response.status_code == 200 and response["Cache-Control"] == "no-store"
                with PILImage.open(io.BytesIO(response.content)) as image:
                    assert image.size == (16, 16)
        else:
            assert "sliceHeatmaps" not in html and "tiny-volume" not in html
            assert "ai-data" not in html
            for url in urls:
                response = client.get(url)
                assert response.status_code == 404 and b"tiny-volume" not in response.content
        body = {
            "idempotency_key": f"key-{assignment.pk:012d}",
            "findings": {
                "nodule": {"present": False, "confidence": 10, "marks": []},
                "effusion": {"present": False, "confidence": 10, "marks": []},
            },
        }
        response = client.post(
            reverse("readers-submit", args=[assignment.pk]),
            json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        for url in urls:  # submitted: no more AI output, in either arm
            assert client.get(url).status_code == 404
    assert seen == {"assisted", "unassisted"}
