"""Obuchowski-Rockette analysis against OR-DBM MRMC 2.5 / MRMCaov 0.3.0 reference output.

Reference values (tests/data/README.md for the data's provenance):
MRMCaov 0.3.0, ``mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke,
cov = jackknife | DeLong | unbiased)`` with ``summary(fit)`` (RRRC, FRRC, RRFC); OR-DBM MRMC 2.51
on Franken1.lrc for FRRC where cov2 < cov3. Tolerance: 1e-6 relative, or the printed digits.
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.io import mrmc_design, read_mrmc_csv
from analysis.mrmc import or_analysis
from analysis.mrmc.covariance import metric_and_covariance
from analysis.roc import empirical_auc

DATA = "tests/data"
REL = 1e-6


@pytest.fixture(scope="module")
def vandyke():
    return read_mrmc_csv(f"{DATA}/vandyke.csv")


@pytest.fixture(scope="module")
def franken():
    return read_mrmc_csv(f"{DATA}/franken.csv")


def approx(value, rel=REL):
    """Match a reference value to 1e-6 relative or to its printed digits, whichever is looser."""
    text = repr(value)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return pytest.approx(value, rel=rel, abs=0.5 * 10.0**-decimals if decimals else 0.0)


def test_vandyke_treatment_aucs_and_variance_components(vandyke):
    result = or_analysis(vandyke)
    assert result.treatment_value == {"1": approx(0.897037037), "2": approx(0.940837359)}
    vc = result.var_components
    assert vc is not None
    assert vc.var_R == approx(0.00153500, rel=1e-5)
    assert vc.var_TR == approx(0.00020040, rel=1e-4)
    assert vc.cov1 == approx(0.00034661, rel=1e-5)
    assert vc.cov2 == approx(0.00034407, rel=1e-5)
    assert vc.cov3 == approx(0.00023903, rel=1e-4)
    assert vc.var_error == approx(0.00080229, rel=1e-5)


def test_vandyke_rrrc_jackknife(vandyke):
    result = or_analysis(vandyke, factors="RRRC")
    test = result.global_test
    assert (test.statistic_name, test.df1) == ("F", 1)
    assert test.statistic == approx(4.456319)
    assert test.df2 == approx(15.25967)
    assert test.p_value == approx(0.05166569)
    (diff,) = result.differences
    assert diff.pair == "1 - 2"
    assert diff.estimate == approx(-0.0438003221)
    assert diff.se == approx(0.02074862)
    assert (diff.ci_lower, diff.ci_upper) == (approx(-0.08795950), approx(0.00035885))
    assert diff.p_value == approx(0.05166569)
    one, two = result.single_treatment["1"], result.single_treatment["2"]
    assert (one.ci_lower, one.ci_upper, one.df) == (
        approx(0.825224),
        approx(0.968850),
        approx(12.745, rel=1e-4),
    )
    assert (two.ci_lower, two.ci_upper, two.df) == (
        approx(0.894138),
        approx(0.987537),
        approx(12.710, rel=1e-4),
    )


def test_vandyke_frrc_is_chi_square_with_normal_intervals(vandyke):
    result = or_analysis(vandyke, factors="FRRC")
    test = result.global_test
    assert (test.statistic_name, test.df2) == ("X2", None)
    assert test.statistic == approx(5.475953)
    assert test.p_value == approx(0.01927984)
    (diff,) = result.differences
    assert diff.df is None
    assert (diff.ci_lower, diff.ci_upper) == (approx(-0.08048591), approx(-0.00711473))
    assert all(single.df is None for single in result.single_treatment.values())


def test_vandyke_rrfc_has_no_variance_components(vandyke):
    result = or_analysis(vandyke, factors="RRFC")
    test = result.global_test
    assert test.statistic == approx(8.704, rel=1e-4)
    assert (test.df1, test.df2) == (1, 4)
    assert test.p_value == approx(0.04195875)
    (diff,) = result.differences
    assert (diff.ci_lower, diff.ci_upper) == (approx(-0.08502022), approx(-0.00258042))
    assert result.var_components is None
    assert result.to_dict()["var_components"] is None


@pytest.mark.parametrize(
    ("cov", "statistic", "df2", "p_value"),
    [
        ("delong", 4.484854, 15.0661, 0.051233),
        ("unbiased", 4.489614, 15.0342, 0.051162),
    ],
)
def test_vandyke_rrrc_other_covariance_estimators(vandyke, cov, statistic, df2, p_value):
    test = or_analysis(vandyke, cov=cov).global_test
    assert test.statistic == approx(statistic)
    assert test.df2 == approx(df2, rel=1e-5)
    assert test.p_value == approx(p_value, rel=1e-5)


def test_franken_frrc_truncates_cov2_minus_cov3_as_or_dbm_mrmc(franken):
    result = or_analysis(franken, factors="FRRC")
    vc = result.var_components
    assert vc is not None and vc.cov2 < vc.cov3  # reported untruncated
    assert result.global_test.statistic == approx(0.32101, rel=1e-5)
    assert result.global_test.p_value == approx(0.5710, rel=1e-4)


def test_to_dict_has_the_design_json_shape(vandyke):
    data = or_analysis(vandyke).to_dict()
    assert list(data) == [
        "metric",
        "cov",
        "factors",
        "design",
        "n_readers",
        "n_cases",
        "n_positive",
        "n_negative",
        "treatment_value",
        "reader_value",
        "var_components",
        "global_test",
        "differences",
        "single_treatment",
        "notes",
    ]
    assert (data["n_readers"], data["n_cases"], data["n_positive"], data["n_negative"]) == (
        5,
        114,
        45,
        69,
    )
    assert data["reader_value"][0] == {
        "treatment": "1",
        "reader": "1",
        "value": approx(0.9196, rel=1e-4),
    }
    assert set(data["var_components"]) == {"var_R", "var_TR", "cov1", "cov2", "cov3", "var_error"}
    assert set(data["single_treatment"]["1"]) == {"estimate", "se", "df", "ci_lower", "ci_upper"}


def _random_study(seed, treatments=2, readers=3, cases=12, levels=4):
    rng = np.random.default_rng(seed)
    truth = np.r_[np.ones(cases // 2, int), np.zeros(cases - cases // 2, int)]
    rows = [
        (f"r{j}", f"t{i}", f"c{k}", truth[k], float(rng.integers(0, levels) + truth[k]))
        for i in range(treatments)
        for j in range(readers)
        for k in range(cases)
    ]
    return pd.DataFrame(rows, columns=["reader", "treatment", "case", "truth", "rating"])


def _brute_jackknife(frame, metric):
    design = mrmc_design(frame)
    t, r, K = design.ratings.shape
    rows = design.ratings.reshape(t * r, K)

    def value(keep):
        pos = rows[:, keep & design.truth]
        neg = rows[:, keep & ~design.truth]
        if metric == "sensitivity":
            return pos.mean(axis=1)
        if metric == "specificity":
            return 1 - neg.mean(axis=1)
        return np.array([empirical_auc(p, q) for p, q in zip(pos, neg, strict=True)])

    # Sensitivity and specificity are jackknifed over the cases of their truth class only.
    deleted = {
        "sensitivity": np.flatnonzero(design.truth),
        "specificity": np.flatnonzero(~design.truth),
    }.get(metric, np.arange(K))
    n = deleted.size
    loo = np.array([value(np.arange(K) != k) for k in deleted]).T
    centred = loo - loo.mean(axis=1, keepdims=True)
    return value(np.ones(K, bool)).reshape(t, r), (n - 1) / n * centred @ centred.T


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cases=st.integers(5, 14))
def test_jackknife_from_placements_equals_brute_force_leave_one_out(seed, cases):
    frame = _random_study(seed, cases=cases)
    values, cov = metric_and_covariance(mrmc_design(frame), "empirical_auc", "jackknife")
    expected_values, expected_cov = _brute_jackknife(frame, "empirical_auc")
    np.testing.assert_allclose(values, expected_values, atol=1e-12)
    np.testing.assert_allclose(cov, expected_cov, atol=1e-14)


@pytest.mark.parametrize("metric", ["sensitivity", "specificity"])
def test_binary_metrics_jackknife_equals_brute_force(metric):
    frame = _random_study(7, readers=4, cases=20, levels=3)
    frame["rating"] = (frame["rating"] >= 2).astype(float)
    design = mrmc_design(frame)
    values, cov = metric_and_covariance(design, metric, "jackknife")
    expected_values, expected_cov = _brute_jackknife(frame, metric)
    np.testing.assert_allclose(values, expected_values, atol=1e-12)
    np.testing.assert_allclose(cov, expected_cov, atol=1e-14)
    result = or_analysis(frame, metric=metric)
    for single in result.single_treatment.values():
        assert 0.0 <= single.ci_lower <= single.estimate <= single.ci_upper <= 1.0


def test_binary_metric_rejects_non_binary_ratings(vandyke):
    with pytest.raises(ValueError, match="binary ratings"):
        or_analysis(vandyke, metric="sensitivity")


def test_unbiased_covariance_equals_u_statistic_by_enumeration():
    frame = _random_study(11, treatments=2, readers=2, cases=8)
    design = mrmc_design(frame)
    _, cov = metric_and_covariance(design, "empirical_auc", "unbiased")
    rows = design.ratings.reshape(4, -1)
    pos, neg = rows[:, design.truth], rows[:, ~design.truth]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    m, n = psi.shape[1:]
    # Unbiased E[AUC_a AUC_b] - E[psi_a] E[psi_b] with the product moment over distinct pairs.
    expected = np.empty((4, 4))
    for a in range(4):
        for b in range(4):
            prod = np.einsum("ij,kl->ijkl", psi[a], psi[b])
            same_i = np.eye(m, dtype=bool)[:, None, :, None]
            same_j = np.eye(n, dtype=bool)[None, :, None, :]
            moments = [
                prod[np.broadcast_to(mask, prod.shape)].mean()
                for mask in (same_i & same_j, same_i & ~same_j, ~same_i & same_j, ~same_i & ~same_j)
            ]
            c = [1 / (m * n), (n - 1) / (m * n), (m - 1) / (m * n), (m - 1) * (n - 1) / (m * n)]
            expected[a, b] = sum(ci * mi for ci, mi in zip(c, moments, strict=True)) - moments[3]
    np.testing.assert_allclose(cov, expected, atol=1e-15)


def test_three_treatments_give_every_pair_in_first_appearance_order():
    frame = _random_study(5, treatments=3, readers=4, cases=30)
    frame["treatment"] = frame["treatment"].map({"t0": "B", "t1": "A", "t2": "C"})
    result = or_analysis(frame)
    assert [d.pair for d in result.differences] == ["B - A", "B - C", "A - C"]
    assert result.global_test.df1 == 2
    means = result.treatment_value
    assert result.differences[1].estimate == approx(means["B"] - means["C"])


def test_two_treatments_difference_p_value_equals_global_p_value(vandyke):
    for factors in ("RRRC", "FRRC", "RRFC"):
        result = or_analysis(vandyke, factors=factors)
        assert result.differences[0].p_value == approx(result.global_test.p_value)


def test_alpha_sets_the_interval_level(vandyke):
    wide = or_analysis(vandyke, alpha=0.01).differences[0]
    narrow = or_analysis(vandyke, alpha=0.05).differences[0]
    assert wide.ci_upper - wide.ci_lower > narrow.ci_upper - narrow.ci_lower


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("metric", "pauc", "unknown metric"),
        ("cov", "percentile", "unknown covariance"),
        ("factors", "XX", "unknown factors"),
        ("alpha", 1.5, "alpha"),
    ],
)
def test_unknown_options_raise_value_error(vandyke, option, value, message):
    with pytest.raises(ValueError, match=message):
        or_analysis(vandyke, **{option: value})


def test_one_treatment_is_rejected(vandyke):
    with pytest.raises(ValueError, match="at least 2 treatments"):
        or_analysis(vandyke[vandyke["treatment"] == "1"])


def test_json_turns_non_finite_numbers_into_null():
    frame = _random_study(1, readers=2, cases=6)
    frame["rating"] = frame["truth"].astype(float)  # every reader perfect: zero variances
    data = or_analysis(frame).to_dict()
    assert data["global_test"]["statistic"] is None or math.isfinite(
        data["global_test"]["statistic"]
    )


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_row_order_does_not_matter_and_swapping_treatments_flips_the_sign(seed):
    frame = _random_study(seed, readers=3, cases=16)
    result = or_analysis(frame)
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    again = or_analysis(shuffled)
    assert again.global_test.statistic == pytest.approx(result.global_test.statistic, nan_ok=True)
    swapped = frame.sort_values("treatment", ascending=False, kind="stable")
    (diff,) = or_analysis(swapped).differences
    assert diff.pair == "t1 - t0"
    assert diff.estimate == pytest.approx(-result.differences[0].estimate, abs=1e-15)
    assert diff.se == pytest.approx(result.differences[0].se)


def test_delong_covariance_is_the_roc_module_delong(vandyke):
    from analysis.roc import delong

    design = mrmc_design(vandyke)
    _, cov = metric_and_covariance(design, "empirical_auc", "delong")
    rows = design.ratings.reshape(10, -1)
    expected = delong(rows[:, design.truth], rows[:, ~design.truth]).covariance
    np.testing.assert_allclose(cov, expected, rtol=1e-12)
