"""FROC figures of merit and OR/DBM analysis against RJafroc 2.1.3 (tests/data/rjafroc_froc.R)."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.dbm import DBMResult
from analysis.froc import FrocData, read_workbook
from analysis.froc.analysis import froc_analysis
from analysis.froc.fom import FOMS, figure_of_merit
from analysis.mrmc import ORResult

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN: dict[str, Any] = json.loads((DATA / "rjafroc_froc.json").read_text())
RTOL = 1e-6  # the bar: relative
ATOL = 1e-12  # for values that are 0 in both


@cache
def _data(name: str) -> FrocData:
    return read_workbook(DATA / GOLDEN[name]["file"])


def _close(ours: Any, theirs: Any, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float),
        np.asarray(theirs, dtype=float),
        rtol=RTOL,
        atol=ATOL,
        err_msg=what,
    )


def _reorder(data: FrocData, entry: dict[str, Any], values: Any) -> Any:
    """RJafroc's (treatment x reader) table in our treatment and reader order."""
    rows = [str(x) for x in entry["modalityID"]]
    cols = [str(x) for x in entry["readerID"]]
    table = np.asarray(values, dtype=float)
    return table[
        np.ix_([rows.index(t) for t in data.treatments], [cols.index(r) for r in data.readers])
    ]


# RJafroc's datasets and the simulated study (project_written has figures of merit only).
CASES = [(name, fom) for name in GOLDEN if GOLDEN[name]["st"] for fom in FOMS]


def _check_single(ours: Any, theirs: dict[str, Any], fom: str, *, normal: bool, what: str) -> None:
    _close(ours.estimate, theirs["Estimate"], what)
    _close(ours.se, theirs["StdErr"], what)
    if not normal:
        _close(ours.df, theirs["DF"], what)
    high = math.inf if fom == "MaxNLF" else 1.0
    # The project clips intervals to the range of the figure of merit; RJafroc does not.
    _close(ours.ci_lower, min(max(theirs["CILower"], 0.0), high), what)
    _close(ours.ci_upper, min(theirs["CIUpper"], high), what)


def _check_differences(result: ORResult | DBMResult, golden: dict[str, Any], what: str) -> None:
    theirs = list(golden["ciDiffTrt"].values())
    assert len(result.differences) == len(theirs)
    for d, g in zip(result.differences, theirs, strict=True):
        _close(d.estimate, g["Estimate"], what)
        _close(d.se, g["StdErr"], what)
        _close(d.ci_lower, g["CILower"], what)
        _close(d.ci_upper, g["CIUpper"], what)
        _close(d.p_value, g.get("PrGTt", g.get("PrGTz")), what)
        if "DF" in g:
            _close(d.df, g["DF"], what)


@pytest.mark.parametrize(("name", "fom"), CASES)
@pytest.mark.parametrize("factors", ["RRRC", "FRRC", "RRFC"])
def test_or_analysis_equals_rjafroc_st(name: str, fom: str, factors: str) -> None:
    data = _data(name)
    golden = GOLDEN[name]["st"][f"{fom}/OR/{factors}"]
    result = froc_analysis(data, fom=fom, method="OR", factors=factors)
    assert isinstance(result, ORResult)
    what = f"{name} {fom} OR {factors}"
    _close(list(result.treatment_value.values()), golden["trtMeans"], what)
    ms = golden["TRanova"]
    _close(
        [result.mean_squares.T, result.mean_squares.R, result.mean_squares.TR],
        [ms["T"]["MS"], ms["R"]["MS"], ms["TR"]["MS"]],
        what,
    )
    vc = {key: value["Estimates"] for key, value in golden["VarCom"].items()}
    if result.var_components is not None:
        c = result.var_components
        _close(
            [c.var_error, c.cov1, c.cov2, c.cov3],
            [vc["Var"], vc["Cov1"], vc["Cov2"], vc["Cov3"]],
            what,
        )
        # RJafroc truncates max(cov2 - cov3, 0) in VarTR; the project reports it untruncated.
        excess = c.cov2 - c.cov3
        _close(c.var_TR - excess + max(excess, 0.0), vc["VarTR"], what)
        if excess >= 0:
            _close(c.var_R, vc["VarR"], what)
    test = golden["FTests"]
    if factors == "RRRC":
        _close(
            [result.global_test.statistic, result.global_test.df2, result.global_test.p_value],
            [test["Treatment"]["FStat"], test["Error"]["DF"], test["Treatment"]["p"]],
            what,
        )
    elif factors == "FRRC":
        assert result.global_test.statistic_name == "X2"
        _close(
            [result.global_test.statistic, result.global_test.p_value],
            [test["Treatment"]["Chisq"], test["Treatment"]["p"]],
            what,
        )
    else:
        _close(
            [result.global_test.statistic, result.global_test.df2, result.global_test.p_value],
            [test["T"]["F"], test["TR"]["DF"], test["T"]["p"]],
            what,
        )
    _check_differences(result, golden, what)
    for (key, ours), theirs in zip(
        result.single_treatment.items(), golden["ciAvgRdrEachTrt"].values(), strict=True
    ):
        _check_single(ours, theirs, fom, normal=factors == "FRRC", what=f"{what} {key}")


@pytest.mark.parametrize(("name", "fom"), CASES)
@pytest.mark.parametrize("factors", ["RRRC", "FRRC", "RRFC"])
def test_dbm_analysis_equals_rjafroc_st(name: str, fom: str, factors: str) -> None:
    data = _data(name)
    golden = GOLDEN[name]["st"][f"{fom}/DBM/{factors}"]
    result = froc_analysis(data, fom=fom, method="DBM", factors=factors)
    assert isinstance(result, DBMResult)
    what = f"{name} {fom} DBM {factors}"
    _close(list(result.treatment_value.values()), golden["trtMeans"], what)
    ms = golden["TRCanova"]
    m = result.mean_squares
    _close(
        [m.T, m.R, m.C, m.TR, m.TC, m.RC, m.TRC],
        [ms[key]["MS"] for key in ("T", "R", "C", "TR", "TC", "RC", "TRC")],
        what,
    )
    vc = {key: value["Estimates"] for key, value in golden["VarCom"].items()}
    c = result.var_components
    _close(
        [c.var_R, c.var_C, c.var_TR, c.var_TC, c.var_RC, c.var_error],
        [vc[key] for key in ("VarR", "VarC", "VarTR", "VarTC", "VarRC", "VarErr")],
        what,
    )
    test = golden["FTests"]
    _close(
        [result.global_test.statistic, result.global_test.df2, result.global_test.p_value],
        [test["Treatment"]["FStat"], test["Error"]["DF"], test["Treatment"]["p"]],
        what,
    )
    _check_differences(result, golden, what)
    for (key, ours), theirs in zip(
        result.single_treatment.items(), golden["ciAvgRdrEachTrt"].values(), strict=True
    ):
        _check_single(ours, theirs, fom, normal=False, what=f"{what} {key}")
    assert [v.value for v in result.reader_value] == pytest.approx(
        figure_of_merit(data, fom).ravel().tolist()
    )


def test_var_tr_is_untruncated_where_rjafroc_truncates_it() -> None:
    # dataset06, MaxNLF: cov2 < cov3, RJafroc's VarTR = MS_TR - Var + Cov1 + max(Cov2 - Cov3, 0).
    result = froc_analysis(_data("dataset06"), fom="MaxNLF", method="OR")
    assert isinstance(result, ORResult)
    assert result.var_components is not None
    theirs = GOLDEN["dataset06"]["st"]["MaxNLF/OR/RRRC"]["VarCom"]["VarTR"]["Estimates"]
    assert theirs == pytest.approx(0.00134660, abs=1e-8)
    assert result.var_components.var_TR == pytest.approx(0.00131051, abs=1e-8)


def test_single_treatment_interval_is_clipped_to_the_range_of_the_figure_of_merit() -> None:
    hr_se = froc_analysis(_data("simulated"), fom="HrSe", method="OR").single_treatment["2"]
    theirs = GOLDEN["simulated"]["st"]["HrSe/OR/RRRC"]["ciAvgRdrEachTrt"]["trt2"]["CIUpper"]
    assert theirs == pytest.approx(1.005687, abs=1e-6)
    assert hr_se.ci_upper == 1.0
    # MaxNLF counts marks per normal case: above 1 is in range, below 0 is not.
    nlf = froc_analysis(_data("dataset06"), fom="MaxNLF", method="OR").single_treatment
    assert nlf["1"].ci_upper > 1.0
    assert nlf["2"].ci_lower == 0.0
