"""The platform's RJafroc export of the demo's marks, read by RJafroc 2.1.3: the same wAFROC.

``tests/data/froc/demo_nodule.xlsx`` is ``manage.py export demo --format rjafroc --finding
nodule`` of the demo study (``manage.py demo --simulate-reads``, 60 cases, readers R02-R04);
``tests/data/froc_marks_golden.json`` is RJafroc's ``DfReadDataFile`` of that file and its
``UtilFigureOfMerit`` and ``St(FOM = "wAFROC", method = "OR", analysisOption = "RRRC")``
(``tests/data/froc_marks_golden.R``). RJafroc orders the arms as text (assisted first).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from analysis.froc import read_workbook
from analysis.froc.analysis import froc_analysis
from analysis.froc.fom import figure_of_merit
from tests.services import ROOT

DATA = ROOT / "tests/data"
REL = 1e-6


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "froc_marks_golden.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def data():
    return read_workbook(DATA / "froc/demo_nodule.xlsx")


def test_the_export_reads_back_with_the_platforms_names(data, golden):
    assert data.treatments == ("unassisted", "assisted")
    assert data.readers == ("R02", "R03", "R04")
    assert golden["modalities"] == ["assisted", "unassisted"] and golden["readers"] == [
        "1",
        "2",
        "3",
    ]


def test_the_readers_wafroc_equals_rjafroc_on_the_exported_workbook(data, golden):
    ours = figure_of_merit(data, "wAFROC")

    np.testing.assert_allclose(ours[::-1], golden["fom"], rtol=REL)


def test_the_wafroc_or_analysis_equals_rjafroc_st_on_the_exported_workbook(data, golden):
    r = froc_analysis(data, fom="wAFROC", method="OR", factors="RRRC").to_dict()

    assert [r["treatment_value"][t] for t in ("assisted", "unassisted")] == pytest.approx(
        golden["treatment_value"], rel=REL
    )
    for key in ("var_R", "cov1", "cov2", "cov3", "var_error"):
        assert r["var_components"][key] == pytest.approx(golden[key], rel=REL), key
    g = r["global_test"]
    assert (g["statistic"], g["df2"], g["p_value"]) == pytest.approx(
        (golden["f"], golden["df2"], golden["p"]), rel=REL
    )
    (d,) = r["differences"]
    assert d["pair"] == "unassisted - assisted"  # RJafroc's is assisted - unassisted
    assert (-d["estimate"], d["se"], -d["ci_upper"], -d["ci_lower"]) == pytest.approx(
        (golden["diff_estimate"], golden["diff_se"], golden["diff_lower"], golden["diff_upper"]),
        rel=REL,
    )
    single = r["single_treatment"]
    assert [single[t]["se"] for t in ("assisted", "unassisted")] == pytest.approx(
        golden["single_se"], rel=REL
    )
    assert [single[t]["df"] for t in ("assisted", "unassisted")] == pytest.approx(
        golden["single_df"], rel=REL
    )
