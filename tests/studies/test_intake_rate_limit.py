"""The intake API's rate limit: INTAKE_RATE_LIMIT requests a minute per site token, then 429."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone

from studyplatform.studies.models import Case, ImportRefusal, SiteToken
from studyplatform.studies.services import issue_site_token
from tests.factories import SiteFactory, StudyFactory
from tests.studies.import_fixtures import pydicom_file

URL = "/api/studies/{}/cases/"


@pytest.fixture
def intake(db, settings):
    settings.INTAKE_RATE_LIMIT = 2
    study = StudyFactory(slug="limited")
    north, south = SiteFactory(code="north"), SiteFactory(code="south")
    return (
        study,
        issue_site_token(study=study, site=north, name="PACS north"),
        issue_site_token(study=study, site=south, name="PACS south"),
    )


def _send(study, token, case_id="P-1", *, metadata=None):
    image = SimpleUploadedFile(
        "a.dcm", pydicom_file("MR_small.dcm").read_bytes(), content_type="application/dicom"
    )
    data = {"metadata": json.dumps(metadata or {"case_id": case_id}), "images": [image]}
    return Client().post(URL.format(study.slug), data, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_past_the_limit_a_site_token_gets_429_with_retry_after_and_nothing_is_stored(intake):
    study, north, _ = intake
    assert _send(study, north, "P-1").status_code == 201
    assert _send(study, north, "P-1").status_code == 200  # a resend counts as a request too

    refused = _send(study, north, "P-2")

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"].startswith("more than 2 requests a minute from this site token")
    assert list(Case.objects.values_list("case_id", flat=True)) == ["P-1"]


def test_the_limit_is_per_token_and_opens_again_after_the_minute(intake):
    study, north, south = intake
    for case_id in ("N-1", "N-2"):
        assert _send(study, north, case_id).status_code == 201
    assert _send(study, north, "N-3").status_code == 429
    assert _send(study, south, "S-1").status_code == 201  # another site's token has its own

    SiteToken.objects.update(window_start=timezone.now() - timedelta(seconds=61))

    assert _send(study, north, "N-3").status_code == 201


def test_a_limit_of_zero_lets_every_request_through(intake, settings):
    settings.INTAKE_RATE_LIMIT = 0
    study, north, _ = intake

    answers = [_send(study, north, f"P-{n}").status_code for n in range(4)]

    assert answers == [201] * 4


def test_unknown_and_wrong_study_tokens_are_refused_before_counting(intake):
    study, north, _ = intake
    other = StudyFactory(slug="other")

    assert _send(study, "not-a-token").status_code == 401
    assert _send(other, north).status_code == 403
    assert _send(other, north).status_code == 403
    assert _send(study, north, "P-1").status_code == 201  # those counted nothing


@pytest.mark.django_db(transaction=True)
def test_parallel_requests_never_get_more_than_the_limit_through(settings):
    settings.INTAKE_RATE_LIMIT = 3
    study = StudyFactory(slug="parallel")
    token = issue_site_token(study=study, site=SiteFactory(code="north"), name="PACS")
    start = threading.Barrier(10)
    statuses: list[int] = []

    def send() -> None:
        client = Client()
        start.wait()
        try:
            # Metadata without a case ID: a request let through answers 400, cheaply.
            response = client.post(
                URL.format(study.slug),
                {"metadata": json.dumps({"site": "north"})},
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [400] * 3 + [429] * 7
    # The three let through are the same refused input: kept once.
    assert ImportRefusal.objects.filter(study=study).count() == 1
