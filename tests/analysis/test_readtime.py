"""Tests of analysis.readtime against an independent fixed-effects fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.readtime import reading_time
from analysis.simulate import simulate_long_frame


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(6, n_readers=6, n_cases=40, time_ratio=0.8)


def test_ratio_matches_reader_fixed_effects_ols_in_a_balanced_design(long: pd.DataFrame) -> None:
    # balanced crossover: the arm contrast is within reader, so REML GLS and OLS with reader
    # fixed effects give the same estimate, and nearly the same SE (residual df differ)
    res = reading_time(long)
    reads = long.drop_duplicates(["reader", "case", "arm"])
    ols = smf.ols("np.log(duration_s) ~ C(arm, Treatment('unassisted')) + C(reader)",
                  reads).fit()  # fmt: skip
    name = "C(arm, Treatment('unassisted'))[T.assisted]"
    assert math.log(res.ratio) == pytest.approx(ols.params[name], abs=1e-6)
    half = (math.log(res.ci_upper) - math.log(res.ci_lower)) / 2
    assert half / 1.959963984540054 == pytest.approx(ols.bse[name], rel=0.02)
    assert res.ci_lower < 0.8 / 0.9 and res.ci_upper > 0.8 * 0.9  # near the simulated 0.8
    assert res.n_readers == 6 and res.model_error is None


def test_arm_summaries_count_reads_not_finding_rows(long: pd.DataFrame) -> None:
    res = reading_time(long)
    assert [a.n_reads for a in res.arms] == [6 * 40, 6 * 40]
    un = long[long["arm"] == "unassisted"].drop_duplicates(["reader", "case"])["duration_s"]
    assert res.arms[0].median == pytest.approx(np.median(un))
    assert res.arms[0].geometric_mean == pytest.approx(np.exp(np.log(un).mean()))


def test_non_positive_durations_are_dropped_and_counted(long: pd.DataFrame) -> None:
    bad = long.copy()
    row = bad.iloc[0]
    same_read = (bad["reader"] == row["reader"]) & (bad["case"] == row["case"])
    first = bad.index[same_read & (bad["arm"] == row["arm"])]
    bad.loc[first, "duration_s"] = 0.0
    assert reading_time(bad).n_dropped == 1


def test_missing_arm_or_column_rejected(long: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        reading_time(long.drop(columns="duration_s"))
    with pytest.raises(ValueError, match="assisted"):
        reading_time(long[long["arm"] == "unassisted"])


def test_to_dict_names_the_model(long: pd.DataFrame) -> None:
    assert "reader" in reading_time(long).to_dict()["model"]


def test_a_read_keeps_its_duration_when_one_finding_row_lacks_it(long: pd.DataFrame) -> None:
    partial = long.copy()
    partial.loc[partial.index[0], "duration_s"] = np.nan  # one finding's row of one read
    res = reading_time(partial)
    assert res.n_dropped == 0
    assert [a.n_reads for a in res.arms] == [6 * 40, 6 * 40]
