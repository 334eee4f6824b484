"""Tests of analysis.figures: the builders return figures that show the results."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.agreement import long_frame_agreement
from analysis.missed import missed_findings
from analysis.mrmc import or_analysis
from analysis.simulate import simulate_long_frame, simulate_roe_metz
from analysis.standalone import ai_standalone


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(8, n_readers=3, n_cases=30)


def test_importing_figures_does_not_import_plotly() -> None:
    code = "import sys, analysis.figures; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_roc_figure_has_one_curve_per_reader_and_an_average_per_treatment() -> None:
    frame = simulate_roe_metz(n_readers=3, n_positive=20, n_negative=25, seed=2)
    fig = figures.roc_curves_figure(frame)
    names = [t.name for t in fig.data]
    assert sum("reader average" in n for n in names) == 2
    assert sum("/" in n for n in names) == 6
    # the averaged curve's area is close to the mean reader AUC
    res = or_analysis(frame)
    avg = next(t for t in fig.data if t.name.startswith("1 (reader average"))
    assert np.trapezoid(avg.y, avg.x) == pytest.approx(res.treatment_value["1"], abs=0.01)


def test_forest_figure_shows_every_reader_value_and_the_interval() -> None:
    frame = simulate_roe_metz(n_readers=4, n_positive=20, n_negative=20, seed=3)
    res = or_analysis(frame)
    fig = figures.auc_forest_figure(res)
    assert len(fig.data) == 2
    first = fig.data[0]
    values = [rv.value for rv in res.reader_value if rv.treatment == "1"]
    assert list(first.x[:-1]) == pytest.approx(values)
    s = res.single_treatment["1"]
    assert first.x[-1] + first.error_x.array[-1] == pytest.approx(s.ci_upper)


def test_missed_rates_figure_has_a_bar_per_arm(long: pd.DataFrame) -> None:
    res = missed_findings(long)
    fig = figures.missed_rates_figure(res)
    assert [t.name for t in fig.data] == ["unassisted", "assisted"]
    assert list(fig.data[0].x) == [f.finding for f in res.findings]
    fp = figures.missed_rates_figure(res, kind="false_positive")
    assert fp.data[1].y[0] == pytest.approx(res.findings[0].false_positive.arms[1].rate)
    with pytest.raises(ValueError, match="kind"):
        figures.missed_rates_figure(res, kind="other")


def test_agreement_table_and_subgroup_figure_hold_every_row(long: pd.DataFrame) -> None:
    rows = long_frame_agreement(long)
    table = figures.agreement_table_figure(rows)
    assert len(table.data[0].cells.values[0]) == len(rows)
    sa = ai_standalone(long)
    fig = figures.standalone_subgroups_figure(sa)
    assert len(fig.data) == len(sa.findings)
    assert len(fig.data[0].y) == 1 + len(sa.findings[0].subgroups)


def test_roc_figure_adds_fitted_binormal_curves_and_their_average() -> None:
    from analysis.io import read_mrmc_csv

    frame = read_mrmc_csv("tests/data/vandyke.csv")
    fig = figures.roc_curves_figure(frame)
    names = [t.name for t in fig.data]
    reader_curves = [n for n in names if "(binormal, AUC" in n]
    # VanDyke reader 4 under treatment 2 separates the classes: no fitted curve (MRMCaov's rule)
    assert len(reader_curves) == 9
    assert not any(n.startswith("2, reader 4 ") for n in reader_curves)
    averages = {t.name.split(" ")[0]: t for t in fig.data if "binormal average" in t.name}
    assert sorted(averages) == ["1", "2"]
    assert "4 of 5 readers" in averages["2"].name and "of 5" not in averages["1"].name
    # The average is the curve of mean b and mean AUC: its area is the mean binormal AUC.
    result = or_analysis(frame, metric="binormal_auc")
    values = [v.value for v in result.reader_value if v.treatment == "1"]
    first = averages["1"]
    assert np.trapezoid(first.y, first.x) == pytest.approx(np.mean(values), abs=2e-3)
    assert f"AUC {np.mean(values):.3f}" in first.name
    assert sum("reader average" in n for n in names) == 2


def test_roc_figure_without_binormal_curves() -> None:
    frame = simulate_roe_metz(n_readers=3, n_positive=20, n_negative=25, seed=2)
    fig = figures.roc_curves_figure(frame, binormal=False)
    assert not any("binormal" in t.name for t in fig.data)
