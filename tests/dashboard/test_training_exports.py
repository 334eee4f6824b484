"""Training reads never reach an export or the analysis, and the report lists who trained.

Through the commands a statistician runs (``demo``, ``export``, ``analyze``) on the demo study:
its training cases are read by R01 through the reading pages; R02-R04 (simulated) are waived.
"""

from __future__ import annotations

import json
from io import StringIO

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from studyplatform.reading.models import Assignment, Read, ReadingSession
from studyplatform.studies.demo import TRAINING_CASES
from studyplatform.studies.models import Study

pytestmark = pytest.mark.django_db

ANSWERS = {
    code: {"present": False, "confidence": 10, "marks": []}
    for code in ("nodule", "pneumothorax", "effusion")
}


def _train(client) -> None:
    client.force_login(get_user_model().objects.get(username="reader1"))
    assert client.post(reverse("readers-training", args=["demo"])).status_code == 302
    for assignment in Assignment.objects.filter(session__training=True).order_by(
        "position", "step"
    ):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        body = {"idempotency_key": f"train-{assignment.pk:06d}", "findings": ANSWERS}
        submitted = client.post(
            reverse("readers-submit", args=[assignment.pk]),
            json.dumps(body),
            content_type="application/json",
        )
        assert submitted.status_code == 201


def test_training_reads_stay_out_of_exports_and_analysis(settings, roles, client, tmp_path):
    settings.DEBUG = True
    call_command("demo", cases=6, simulate_reads=True, stdout=StringIO())
    study = Study.objects.get(slug="demo")
    training = set(study.cases.filter(training=True).values_list("case_id", flat=True))
    assert len(training) == TRAINING_CASES
    allocated = set(
        Assignment.objects.filter(session__study=study).values_list("case__case_id", flat=True)
    )
    assert not training & allocated  # never randomized
    _train(client)
    assert Read.objects.filter(assignment__session__training=True).count() == 2 * TRAINING_CASES
    assert ReadingSession.objects.get(training=True).completed_at is not None

    for fmt in ("long", "marks"):
        out = tmp_path / f"{fmt}.csv"
        call_command("export", "demo", "--format", fmt, "-o", str(out), stdout=StringIO())
        text = out.read_text()
        assert not any(case in text for case in training), fmt
    long = pd.read_csv(tmp_path / "long.csv")
    assert set(long["case"]) == {f"DEMO-{n:03d}" for n in range(1, 7)}
    assert set(long["reader"]) == {"R02", "R03", "R04"}
    mrmc = tmp_path / "mrmc.csv"
    call_command(
        "export", "demo", "--format", "mrmcaov", "--finding", "nodule", "-o", str(mrmc),
        stdout=StringIO(),
    )  # fmt: skip
    assert not any(case in mrmc.read_text() for case in training)

    out = StringIO()
    call_command("analyze", "demo", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["analysis"]["n_cases"] == 6
    states = {row["reader"]: row["state"] for row in data["training"]}
    assert states == {"R01": "done", "R02": "waived", "R03": "waived", "R04": "waived"}
    done = next(row for row in data["training"] if row["reader"] == "R01")
    assert done["completed_at"] and done["reads_done"] == done["reads_total"] == 6
    text = StringIO()
    call_command("analyze", "demo", stdout=text)
    assert "reader training: 1 of 4 readers completed the training" in text.getvalue()
    assert "demo: a simulated reader" in text.getvalue()

    checklist = tmp_path / "checklist.html"
    call_command("export", "demo", "--format", "checklist", "-o", str(checklist), stdout=StringIO())
    html = checklist.read_text()
    assert "Reader training" in html and "1 of 4 readers completed the training" in html
    assert f"training case (reader training, never analysed): {TRAINING_CASES}" in html
    assert not any(case in html for case in training)

    client.force_login(get_user_model().objects.get(username="statistician"))
    page = client.get(reverse("dashboard:report", args=["demo"])).content.decode()
    assert 'id="section-training"' in page and "waived" in page
