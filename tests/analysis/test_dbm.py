"""DBM pseudovalue ANOVA: RJafroc reference output and the exact DBM = OR-jackknife identity.

RJafroc 2.1 ``StSignificanceTesting(dataset02, FOM = "Wilcoxon", method = "DBM")`` on the Van
Dyke data (``tests/data/vandyke.csv``), as printed in Chakraborty's "DBM method special cases"
chapter: RRRC F 4.456319 on (1, 15.26); FRRC p 0.021034969, CI (-0.080883031, -0.0067176131);
RRFC p 0.041958752, CI (-0.085020224, -0.0025804202).
"""

import numpy as np
import pytest

from analysis.dbm import anova_mean_squares, dbm_analysis, pseudovalues
from analysis.io import mrmc_design, read_mrmc_csv
from analysis.mrmc import or_analysis


@pytest.fixture(scope="module")
def vandyke():
    return read_mrmc_csv("tests/data/vandyke.csv")


def test_rrrc_equals_or_jackknife_to_rounding(vandyke):
    dbm = dbm_analysis(vandyke)
    ora = or_analysis(vandyke)
    assert dbm.global_test.statistic == pytest.approx(ora.global_test.statistic, rel=1e-10)
    assert dbm.global_test.df2 == pytest.approx(ora.global_test.df2, rel=1e-10)
    assert dbm.global_test.p_value == pytest.approx(0.05166569, rel=1e-6)
    for ours, theirs in zip(dbm.differences, ora.differences, strict=True):
        assert (ours.se, ours.ci_lower, ours.ci_upper) == pytest.approx(
            (theirs.se, theirs.ci_lower, theirs.ci_upper), rel=1e-10
        )
    for name, single in dbm.single_treatment.items():
        other = ora.single_treatment[name]
        assert (single.se, single.df, single.ci_lower, single.ci_upper) == pytest.approx(
            (other.se, other.df, other.ci_lower, other.ci_upper), rel=1e-10
        )
    assert dbm.var_components.var_R == pytest.approx(ora.var_components.var_R, rel=1e-10)
    assert dbm.var_components.var_TR == pytest.approx(ora.var_components.var_TR, rel=1e-10)


def test_frrc_matches_rjafroc(vandyke):
    result = dbm_analysis(vandyke, factors="FRRC")
    test = result.global_test
    assert test.statistic == pytest.approx(5.475953, rel=1e-6)
    assert (test.df1, test.df2) == (1, 113)
    assert test.p_value == pytest.approx(0.021034969, rel=1e-7)
    (diff,) = result.differences
    assert (diff.ci_lower, diff.ci_upper) == pytest.approx((-0.080883031, -0.0067176131), rel=1e-7)


def test_rrfc_matches_rjafroc(vandyke):
    result = dbm_analysis(vandyke, factors="RRFC")
    assert result.global_test.p_value == pytest.approx(0.041958752, rel=1e-7)
    (diff,) = result.differences
    assert (diff.ci_lower, diff.ci_upper) == pytest.approx((-0.085020224, -0.0025804202), rel=1e-7)


def test_pseudovalues_average_to_the_auc(vandyke):
    design = mrmc_design(vandyke)
    y = pseudovalues(design)
    ora = or_analysis(vandyke)
    per_reader = np.array([[v.value for v in ora.reader_value]]).reshape(2, 5)
    np.testing.assert_allclose(y.mean(axis=2), per_reader, rtol=1e-12)


def test_mean_squares_of_a_balanced_table_sum_to_the_total():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 4, 6))
    ms = anova_mean_squares(y)
    dfs = {"T": 2, "R": 3, "C": 5, "TR": 6, "TC": 10, "RC": 15, "TRC": 30}
    total = sum(getattr(ms, name) * df for name, df in dfs.items())
    assert total == pytest.approx(np.sum((y - y.mean()) ** 2))


def test_to_dict_is_json_ready(vandyke):
    data = dbm_analysis(vandyke, factors="FRRC").to_dict()
    assert data["method"] == "DBM"
    assert set(data["mean_squares"]) == {"T", "R", "C", "TR", "TC", "RC", "TRC"}
    assert data["global_test"]["df2"] == 113


@pytest.mark.parametrize("metric", ["sensitivity", "specificity"])
def test_binary_metrics_dbm_equals_or_jackknife(vandyke, metric):
    frame = vandyke.assign(rating=(vandyke["rating"] >= 3).astype(float))
    dbm = dbm_analysis(frame, metric=metric)
    ora = or_analysis(frame, metric=metric)
    assert dbm.treatment_value == pytest.approx(ora.treatment_value, rel=1e-12)
    assert dbm.global_test.statistic == pytest.approx(ora.global_test.statistic, rel=1e-9)
    assert dbm.global_test.df2 == pytest.approx(ora.global_test.df2, rel=1e-9)
