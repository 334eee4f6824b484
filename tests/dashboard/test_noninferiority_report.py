"""The protocol's non-inferiority margin in a study's analysis: JSON, command text, report."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_protocols_margin_gives_the_decision_in_json_text_and_report_page(
    client, built
) -> None:
    # The built study is a draft: its protocol is edited directly (an open one is amended).
    built.study.ni_margin = 0.05
    built.study.save(update_fields=["ni_margin"])
    out = StringIO()
    call_command("analyze", built.study.slug, "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["protocol"]["ni_margin"] == 0.05
    assert data["protocol"]["primary_endpoint"] == "auc"
    for result in data["analysis"]["mrmc"].values():
        tests = result["non_inferiority"]
        (comparison,) = tests["comparisons"]
        assert tests["margin"] == 0.05 and comparison["pair"] == "assisted - unassisted"
        auc = result["treatment_value"]
        assert comparison["estimate"] == pytest.approx(auc["assisted"] - auc["unassisted"])
        assert comparison["non_inferior"] is (comparison["lower"] > -0.05)

    text = StringIO()
    call_command("analyze", built.study.slug, stdout=text)
    nodule = data["analysis"]["mrmc"]["nodule"]["non_inferiority"]["comparisons"][0]
    decision = "non-inferior" if nodule["non_inferior"] else "non-inferiority not shown"
    assert (
        f"assisted - unassisted {nodule['estimate']:.3f}, lower limit {nodule['lower']:.3f} "
        f"vs margin -0.05, one-sided p {nodule['p_value']:.4f}: {decision}"
    ) in text.getvalue()

    client.force_login(built.statistician)
    page = client.get(reverse("dashboard:report", args=[built.study.slug]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Non-inferiority of the reader-averaged AUC" in body
    assert f"<td>{nodule['lower']:.3f}</td>" in body
