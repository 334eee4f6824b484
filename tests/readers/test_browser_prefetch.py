"""In headless Chromium: while a case is read, the next case's images come into the browser's
cache, so that opening it asks the network for none of them; and nothing of the AI, nor the next
case's page, is requested before the reader opens it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from studyplatform.reading.models import Assignment
from studyplatform.reading.services import open_study, randomize_study
from tests.reading.helpers import PASSWORD, make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study(roles):
    study = make_study(n_cases=4, n_readers=1, with_images=True, with_prereads=True, slug="pf")
    randomize_study(study=study)
    return open_study(study=study)


def _answer(page) -> None:
    for code in ("nodule", "effusion"):
        page.check(f'input[name="{code}-present"][value="absent"]')
        page.fill(f'input[name="{code}-confidence"]', "10")


def test_the_next_case_opens_from_the_cache_and_nothing_of_it_is_asked_before(
    study, live_server, page
):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    network: dict[str, dict[str, Any]] = {}
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on(
        "Network.requestWillBeSent",
        lambda e: network.setdefault(e["requestId"], {"url": e["request"]["url"]}),
    )
    cdp.on(
        "Network.requestServedFromCache",
        lambda e: network.setdefault(e["requestId"], {}).update(cached=True),
    )
    cdp.on(
        "Network.responseReceived",
        lambda e: network.setdefault(e["requestId"], {}).update(
            disk=e["response"].get("fromDiskCache", False), status=e["response"]["status"]
        ),
    )
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "pf-reader1")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.click("#worklist a.button")
    ordered = list(
        Assignment.objects.filter(session__study=study, session__number=1).order_by(
            "position", "step"
        )
    )
    arms = set()
    for index, (current, following) in enumerate(itertools.pairwise(ordered)):
        opened = {f"/assignments/{a.pk}/" for a in ordered[: index + 1]}
        page.wait_for_url(f"{live_server.url}/assignments/{current.pk}/")
        page.wait_for_selector('#viewer[data-ready="true"]')
        page.wait_for_selector('html[data-prefetch="done"]')
        assert page.evaluate("readingPrefetch.state()")["fetched"] == 1
        first = f"{live_server.url}/cases/{following.case_id}/images/1/pixels/"
        # Before the next case is opened: its image was fetched; nothing else of it was asked
        # for (no page, no heatmap, no AI), and it is not opened.
        assert first in requests
        others = [u for u in requests if f"/assignments/{following.pk}/" in u]
        heatmaps = [u for u in requests if "heatmap" in u and not any(path in u for path in opened)]
        assert others == [] and heatmaps == []
        following.refresh_from_db()
        assert following.opened_at is None
        _answer(page)
        mark = len(network)
        page.click("#submit")
        page.wait_for_url(f"{live_server.url}/assignments/{following.pk}/")
        page.wait_for_selector('#viewer[data-ready="true"]')
        arms.add(page.get_attribute("#reading", "data-arm"))
        # The opened case's image: served from the browser's cache, no transfer.
        asked = [r for r in list(network.values())[mark:] if r.get("url") == first]
        assert asked and all(r.get("cached") or r.get("disk") for r in asked), asked
        transfer = page.evaluate(
            "(url) => performance.getEntriesByName(url).map((e) => e.transferSize)", first
        )
        assert transfer and set(transfer) == {0}, transfer
    assert arms == {"assisted", "unassisted"}
