"""Blinding: no AI output reaches a reader in the unassisted arm, by any path; no interim result
reaches a reader at all.

The case's pre-read exists (probabilities 0.8731 and 0.1234, a heatmap, a model name). Every
response a reader can get for an unassisted assignment - the page, the JSON it embeds and posts,
the pixels, the heatmap URL, error pages with DEBUG off - is searched for them. The assisted
page is searched the same way as a control: there the markers must be found, so the search
would see a leak.
"""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from studyplatform.prereads.models import PreRead
from studyplatform.reading.models import Assignment
from studyplatform.studies.models import Image, Series
from tests.security.conftest import World, open_unassisted

pytestmark = pytest.mark.django_db

AI_MARKERS = ("0.8731", "0.873", "0.87", "0.1234", "0.123", "ai-panel", "ai-data", "ai.js",
              "ai.css", "heatmap", "AI pre-read", "flagged")  # fmt: skip


def _found(marker: str, text: str) -> bool:
    if marker[0].isdigit():
        # A probability stands as a number of its own: "10.123456" in a timestamp is not 0.123.
        return re.search(rf"(?<![\d.]){re.escape(marker)}(?!\d)", text) is not None
    return marker in text


def _leaks(body: bytes | str, world: World) -> list[str]:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    models = {p.model.name for p in PreRead.objects.filter(case__study=world.alpha)}
    return [marker for marker in (*AI_MARKERS, *models) if _found(marker, text)]


@pytest.fixture
def reader(world, settings) -> Client:
    settings.DEBUG = False
    client = Client()
    client.force_login(world.users["reader"])
    return client


@pytest.fixture
def unassisted(world, reader) -> Assignment:
    """The reader's next unassisted case, opened (the assisted one is submitted by then)."""
    return open_unassisted(reader, world)


def _page_data(html: str) -> dict:
    found = re.search(r'id="reading-data" type="application/json">(.*?)</script>', html, re.S)
    assert found
    data: dict = json.loads(found.group(1))
    return data


def test_the_search_finds_ai_output_on_the_assisted_page(reader, world):
    html = reader.get(reverse("readers-assignment", args=[world.assisted.pk])).content.decode()
    assert {"0.873", "ai-panel", "ai-data"} <= set(_leaks(html, world))
    assert reader.get(reverse("readers-heatmap", args=[world.assisted.pk])).status_code == 200


def test_unassisted_page_and_its_data_hold_no_ai_output(reader, world, unassisted):
    response = reader.get(reverse("readers-assignment", args=[unassisted.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert _leaks(html, world) == []
    data = _page_data(html)
    assert not [key for key in data if "ai" in key.lower() or "heat" in key.lower()]
    assert all(set(image) >= {"pixelsUrl"} for image in data["images"])


def test_every_endpoint_the_unassisted_page_calls_answers_without_ai_output(
    reader, world, unassisted
):
    pk = unassisted.pk
    data = _page_data(reader.get(reverse("readers-assignment", args=[pk])).content.decode())
    pixels = reader.get(data["images"][0]["pixelsUrl"])
    body = b"".join(pixels.streaming_content) if pixels.streaming else pixels.content
    assert pixels.status_code == 200 and _leaks(body, world) == []
    answers = {
        f["code"]: {"present": True, "confidence": 50, "marks": []} for f in data["findings"]
    }
    draft = reader.post(
        data["draftUrl"], json.dumps({"findings": answers}), content_type="application/json"
    )
    assert draft.status_code == 200 and _leaks(draft.content, world) == []
    refused = reader.post(
        data["submitUrl"], json.dumps({"idempotency_key": "short"}), content_type="application/json"
    )
    assert refused.status_code == 400 and _leaks(refused.content, world) == []
    submitted = reader.post(
        data["submitUrl"],
        json.dumps({"idempotency_key": data["idempotencyKey"], "findings": answers}),
        content_type="application/json",
    )
    assert submitted.status_code == 201 and _leaks(submitted.content, world) == []
    after = reader.get(reverse("readers-assignment", args=[pk]))
    assert _leaks(after.content, world) == []
    correct = reader.get(reverse("readers-correct", args=[pk]))
    assert correct.status_code == 200 and _leaks(correct.content, world) == []


def test_heatmap_of_an_unassisted_or_submitted_case_is_404_without_ai_output(
    reader, world, unassisted
):
    for pk in (unassisted.pk, world.submitted.pk):
        response = reader.get(reverse("readers-heatmap", args=[pk]))
        assert response.status_code == 404
        assert _leaks(response.content, world) == []


def test_error_pages_echo_no_ai_output(reader, world, unassisted):
    pk = unassisted.pk
    for path in (
        f"/assignments/{pk}/heatmap/?probability=1",
        f"/assignments/{pk}/images/9/pixels/",
        f"/assignments/{world.assisted.pk + 10_000}/",
        "/media/prereads/",
        f"/assignments/{pk}/heatmap.png",
    ):
        response = reader.get(path)
        assert 400 <= response.status_code < 500, path
        assert _leaks(response.content, world) == [], path
    # Another reader's assisted case: 404, and nothing of its AI output.
    other = Client()
    other.force_login(world.users["other_reader"])
    for path in (
        reverse("readers-assignment", args=[world.assisted.pk]),
        reverse("readers-heatmap", args=[world.assisted.pk]),
    ):
        response = other.get(path)
        assert response.status_code == 404 and _leaks(response.content, world) == []


def test_reading_pages_and_heatmaps_are_never_stored_by_a_cache(reader, world, unassisted):
    for pk in (unassisted.pk, world.assisted.pk):
        cache = reader.get(reverse("readers-assignment", args=[pk]))["Cache-Control"]
        assert "no-store" in cache and "private" in cache
    heatmap = reader.get(reverse("readers-heatmap", args=[world.assisted.pk]))
    assert "no-store" in heatmap["Cache-Control"]
    for path in ("/", reverse("readers-correct", args=[world.submitted.pk])):
        assert "no-store" in reader.get(path)["Cache-Control"]


def test_interim_results_never_reach_a_reader(reader, world):
    for name, kwargs in (
        ("dashboard:studies", {}),
        ("dashboard:study", {"slug": "alpha"}),
        ("dashboard:report", {"slug": "alpha"}),
        ("dashboard:report_status", {"slug": "alpha"}),
    ):
        response = reader.get(reverse(name, kwargs=kwargs))
        assert response.status_code == 403, (name, kwargs)
        assert b"auc" not in response.content.lower()
    for fmt in ("json", "long", "html"):
        url = reverse("dashboard:export", kwargs={"slug": "alpha"})
        response = reader.post(url, {"format": fmt})
        assert response.status_code == 403, fmt
        assert b"auc" not in response.content.lower()
    admin = reader.get("/admin/reading/read/")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]
    home = reader.get("/").content.decode()
    assert "dashboard" not in home.lower() and _leaks(home, world) == []


def _stack(case_id: int, count: int) -> None:
    """Make the case's series a stack of ``count`` slices, as an imported CT series is."""
    series = Series.objects.get(case_id=case_id)
    first = series.slices.get()
    for number in range(2, count + 1):
        Image.objects.create(
            case_id=case_id,
            series=series,
            position=first.position + number - 1,
            slice_number=number,
            slice_position=2.5 * (number - 1),
            display_offset=1024,
            original=first.original.name,
            display=first.display.name,
            sha256=first.sha256,
            rows=first.rows,
            columns=first.columns,
            bits_stored=first.bits_stored,
            window_center=first.window_center,
            window_width=first.window_width,
        )


def test_every_slice_url_of_an_unassisted_series_answers_without_ai_output(
    reader, world, unassisted
):
    _stack(unassisted.case_id, 6)
    html = reader.get(reverse("readers-assignment", args=[unassisted.pk])).content.decode()
    assert _leaks(html, world) == []
    (series,) = _page_data(html)["series"]
    assert [s["slice"] for s in series["slices"]] == [1, 2, 3, 4, 5, 6]
    assert not [key for key in series if "ai" in key.lower() or "heat" in key.lower()]
    for item in series["slices"]:
        for url in (item["url"], item["url"] + "?format=raw"):
            response = reader.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert response.status_code == 200, url
            assert _leaks(body, world) == [], url
            assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_slice_urls_are_the_readers_own_and_only_once_the_case_is_open(reader, world, unassisted):
    _stack(unassisted.case_id, 3)
    urls = [
        reverse("readers-pixels", kwargs={"pk": unassisted.pk, "position": s.position})
        for s in Image.objects.filter(case_id=unassisted.case_id)
    ]
    other = Client()
    other.force_login(world.users["other_reader"])
    for url in urls:
        response = other.get(url)
        assert response.status_code == 404 and _leaks(response.content, world) == []
    unopened = (
        Assignment.objects.filter(reader__user=world.users["reader"], opened_at__isnull=True)
        .order_by("pk")
        .first()
    )
    assert unopened is not None
    closed = reverse("readers-pixels", kwargs={"pk": unopened.pk, "position": 1})
    assert reader.get(closed).status_code == 404
