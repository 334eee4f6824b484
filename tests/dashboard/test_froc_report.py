"""The report's FROC section: wAFROC per arm and its OR analysis, from the readers' marks."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from analysis.froc import read_workbook
from analysis.froc.analysis import froc_analysis
from analysis.froc_report import wafroc_points
from studyplatform.studies.models import Truth
from tests.dashboard.froc import build_froc_study
from tests.report_tables import table_texts

pytestmark = pytest.mark.django_db


def _analyze(slug: str = "sim") -> dict[str, Any]:
    out = StringIO()
    call_command("analyze", slug, "--json", stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def test_analyze_gives_the_wafroc_or_analysis_of_the_exported_workbook(settings, tmp_path):
    build_froc_study(settings)
    path = tmp_path / "nodule.xlsx"
    call_command("export", "sim", "--format", "rjafroc", "--finding", "nodule", "-o", str(path),
                 stdout=StringIO())  # fmt: skip

    froc = _analyze()["froc"]
    expected = froc_analysis(read_workbook(Path(path)), fom="wAFROC").to_dict()

    nodule = froc["findings"]["nodule"]
    assert froc["fom"] == nodule["fom"] == "wAFROC"
    assert nodule["result"]["treatment_value"] == pytest.approx(
        expected["treatment_value"], rel=1e-12
    )
    assert nodule["result"]["global_test"]["p_value"] == pytest.approx(
        expected["global_test"]["p_value"], rel=1e-9
    )
    assert nodule["rule"] == "inside the lesion's radius" and len(nodule["readers"]) == 3
    assert nodule["n_ll"] > 0 and nodule["n_nl"] > 0


def test_the_report_page_shows_the_froc_section_with_its_curves(client, settings):
    built = build_froc_study(settings)
    client.force_login(built.statistician)

    page = client.get(reverse("dashboard:report", args=["sim"])).content.decode()

    assert 'id="section-froc"' in page and "wAFROC curves, nodule" in page
    tables = table_texts(page[page.index('id="section-froc"') :])
    assert tables[0][0][2] == "wAFROC unassisted (95% CI)"
    assert tables[0][1][0] == "nodule"


def test_a_study_without_lesion_locations_has_no_froc_section(settings):
    build_froc_study(settings)
    Truth.objects.update(location=None)

    assert "froc" not in _analyze()


def test_the_wafroc_curve_ends_at_one_and_its_area_is_the_readers_wafroc(settings, tmp_path):
    import numpy as np

    from analysis.froc.fom import figure_of_merit

    build_froc_study(settings)
    path = tmp_path / "nodule.xlsx"
    call_command("export", "sim", "--format", "rjafroc", "--finding", "nodule", "-o", str(path),
                 stdout=StringIO())  # fmt: skip
    data = read_workbook(path)

    values = figure_of_merit(data, "wAFROC")
    for i in range(len(data.treatments)):
        for j in range(len(data.readers)):
            x, y = wafroc_points(data, i, j)
            assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)
            assert float(np.trapezoid(y, x)) == pytest.approx(values[i, j], rel=1e-12)
