"""Hostile text stored in free-text fields comes back harmless on every page and in exports.

Script tags and attribute breakers are escaped in HTML; spreadsheet formulas are neutralized
in the CSV exports (a leading apostrophe); SQL fragments are only text.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from studyplatform.reading.models import Reader
from studyplatform.studies.models import Case, Site

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('x')</script>"
BREAKER = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example","x")'
SQL = "x'); DROP TABLE studies_case; --"


@pytest.fixture
def hostile(world):
    world.alpha.title = f"{SCRIPT} {SQL}"
    world.alpha.description = BREAKER
    world.alpha.save(update_fields=["title", "description"])
    Site.objects.filter(code="north").update(name=SCRIPT)
    Case.objects.filter(study=world.alpha).update(manufacturer=FORMULA, manufacturer_model=BREAKER)
    Reader.objects.filter(code="alpha-R1").update(specialty=SCRIPT)
    return world


def _client(world, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def test_hostile_text_is_escaped_on_every_page_that_shows_it(hostile, settings):
    settings.DEBUG = False
    staff = _client(hostile, "coordinator")
    statistician = _client(hostile, "statistician")
    superuser = _client(hostile, "superuser")
    reader = _client(hostile, "reader")
    pages = [
        (staff, "/dashboard/"),
        (staff, "/dashboard/alpha/"),
        (statistician, "/dashboard/alpha/report/"),  # results by arm: not the coordinator's
        (superuser, "/admin/studies/study/"),
        (superuser, f"/admin/studies/study/{hostile.alpha.pk}/change/"),
        (superuser, "/admin/studies/site/"),
        (superuser, "/admin/studies/case/"),
        (superuser, "/admin/reading/reader/"),
        (superuser, "/admin/audit/auditevent/"),
        (reader, "/"),
        (reader, f"/assignments/{hostile.assisted.pk}/"),
        (reader, f"/assignments/{hostile.submitted.pk}/correct/"),
    ]
    for client, path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert SCRIPT not in html and BREAKER not in html, path


def test_formulas_in_stored_text_are_neutralized_in_the_csv_export(hostile):
    response = _client(hostile, "statistician").post("/dashboard/alpha/export/", {"format": "long"})
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows, "the export has the submitted read"
    assert {row["manufacturer"] for row in rows} == {"'" + FORMULA}
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())
