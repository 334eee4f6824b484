"""Tests of analysis.drift: KS with Holm control and PSI with a bootstrap interval per site."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.drift import (
    DriftResult,
    SiteDrift,
    case_scores,
    holm_adjust,
    psi,
    psi_interval,
    psi_rows,
    score_distribution_figure,
    score_drift,
)
from analysis.simulate import simulate_long_frame


def _frame(shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for site, offset in (("a", 0.0), ("b", 0.0), ("c", shift)):
        for k in range(300):
            truth = int(k % 3 == 0)
            p = float(np.clip(rng.beta(2, 5) + 0.3 * truth + offset, 0, 1))
            for reader in ("r1", "r2"):  # two reads of each case: counted once
                rows.append(
                    {"case": f"{site}{k}", "finding": "nodule", "truth": truth,
                     "ai_probability": p, "site": site, "reader": reader}
                )  # fmt: skip
    return pd.DataFrame(rows)


def _sites(seed: int, shifts: dict[str, float], n: int = 20) -> pd.DataFrame:
    """``n`` cases per site, a third positive, scores Beta(2, 5) + 0.3 truth + the site's shift."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, shift in shifts.items():
        for k in range(n):
            truth = int(k % 3 == 0)
            p = float(np.clip(rng.beta(2, 5) + 0.3 * truth + shift, 0, 1))
            rows.append({"case": f"{site}{k}", "finding": "nodule", "truth": truth,
                         "ai_probability": p, "site": site})  # fmt: skip
    return pd.DataFrame(rows)


def _rows(result: DriftResult) -> dict[tuple[str, str], SiteDrift]:
    return {(r.stratum, r.site): r for r in result.rows}


def test_psi_is_zero_for_identical_samples_and_grows_with_shift() -> None:
    x = np.random.default_rng(0).uniform(size=2000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert psi(x, np.clip(x + 0.05, 0, 1)) < psi(x, np.clip(x + 0.3, 0, 1))


def test_psi_matches_the_formula_on_hand_made_bins() -> None:
    ref = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    new = np.array([0.1, 0.15, 0.2, 0.3, 0.35, 0.9])
    # two bins split at the reference median 0.5: reference 4/8, 4/8; sample 5/6, 1/6
    q, p = np.array([0.5, 0.5]), np.array([5 / 6, 1 / 6])
    assert psi(ref, new, bins=2) == pytest.approx(float(np.sum((p - q) * np.log(p / q))))


def test_psi_rejects_fewer_than_two_bins() -> None:
    with pytest.raises(ValueError, match="bins"):
        psi(np.ones(3), np.ones(3), bins=1)
    with pytest.raises(ValueError, match="bins"):
        psi_rows(np.ones((2, 3)), np.ones((2, 3)), bins=1)


def test_psi_rows_equals_psi_row_by_row_with_ties_and_empty_bins() -> None:
    rng = np.random.default_rng(5)
    # values on a 0.1 grid: tied quantile edges and empty bins on both sides
    ref = np.round(rng.uniform(size=(200, 25)), 1)
    new = np.round(rng.uniform(size=(200, 18)) ** 2, 1)
    expected = [psi(r, s, 10) for r, s in zip(ref, new, strict=True)]
    np.testing.assert_allclose(psi_rows(ref, new, 10), expected, rtol=0, atol=1e-12)


def test_psi_rows_is_bit_for_bit_the_count_over_unsorted_rows_with_ties_and_nans() -> None:
    # psi_rows sorts each row and binary-searches it; the direct computation counts, on the
    # rows as drawn, the values at or above each edge of np.quantile's unsorted-row edges
    rng = np.random.default_rng(11)
    ref = np.round(rng.uniform(size=(300, 40)), 1)
    new = np.round(rng.beta(2, 3, size=(300, 33)), 1)
    ref[3, 7] = new[5, 0] = new[5, 9] = np.nan  # a NaN edge row and a sample with NaNs
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1], axis=1).T

    def fractions(x: np.ndarray) -> np.ndarray:
        above = (x[:, None, :] >= edges[:, :, None]).sum(axis=2)
        n = x.shape[1]
        counts = -np.diff(np.column_stack([np.full(len(x), n), above, np.zeros(len(x))]))
        return np.ascontiguousarray(counts / n)  # row sums in the same order as psi_rows's

    qf, pf = np.maximum(fractions(ref), 1e-4), np.maximum(fractions(new), 1e-4)
    expected = np.sum((pf - qf) * np.log(pf / qf), axis=1)
    got = psi_rows(ref, new, 10)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(psi_rows(ref[:, ::-1], rng.permuted(new, axis=1), 10), got)


def test_no_shift_at_20_cases_per_site_flags_nothing_where_the_psi_rule_fired() -> None:
    for seed in range(5):
        result = score_drift(_sites(seed, {s: 0.0 for s in "abcde"}), n_boot=100)
        tested = [r for r in result.rows if r.level != "reference"]
        # the former rule (PSI > 0.25 is a major shift) calls most of these comparisons major
        assert sum(r.psi > 0.25 for r in tested) >= len(tested) // 2
        assert {r.level for r in tested} == {"stable"}
        assert all(r.ks_p_value <= r.ks_p_adjusted <= 1 for r in tested)


def test_a_real_shift_at_20_cases_per_site_is_flagged_and_graded_by_psi() -> None:
    result = score_drift(_sites(11, {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.4}))
    rows = _rows(result)
    shifted = rows[("all", "d")]
    assert shifted.ks_p_adjusted <= 0.05 and shifted.level == "major"
    assert {rows[("all", s)].level for s in "bc"} == {"stable"}


def test_holm_adjust_equals_statsmodels_and_r() -> None:
    rng = np.random.default_rng(9)
    for size in (1, 2, 7, 30):
        p = rng.uniform(0, 0.2, size) ** 2
        p[: size // 3] = p[-1]  # ties keep their adjusted value
        expected = multipletests(p, method="holm")[1]
        np.testing.assert_allclose(holm_adjust(p), expected, rtol=1e-14, atol=0)
    # R 4.2.2: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.5), method = "holm")
    #   [1] 0.04 0.09 0.09 0.025 0.5
    got = holm_adjust(np.array([0.01, 0.04, 0.03, 0.005, 0.5]))
    np.testing.assert_allclose(got, [0.04, 0.09, 0.09, 0.025, 0.5], rtol=1e-12)
    with pytest.raises(ValueError, match="p-values"):
        holm_adjust(np.array([0.2, math.nan]))


def test_holm_is_over_all_comparisons_of_the_report_by_default() -> None:
    long = simulate_long_frame(4, n_readers=2, n_cases=90, findings=("nodule", "effusion"))
    result = score_drift(long, n_boot=0)
    tested = [r for r in result.rows if math.isfinite(r.ks_p_value)]
    assert len(tested) == 2 * 3 * 2  # finding types x strata x non-reference sites
    expected = multipletests([r.ks_p_value for r in tested], method="holm")[1]
    np.testing.assert_allclose([r.ks_p_adjusted for r in tested], expected, rtol=1e-12)


def test_holm_within_finding_and_stratum_adjusts_each_family_alone() -> None:
    long = simulate_long_frame(4, n_readers=2, n_cases=90, findings=("nodule", "effusion"))
    result = score_drift(long, family="finding_stratum", n_boot=0)
    families: dict[tuple[str, str], list[SiteDrift]] = {}
    for r in result.rows:
        if math.isfinite(r.ks_p_value):
            families.setdefault((r.finding, r.stratum), []).append(r)
    assert len(families) == 6
    for members in families.values():
        raw = [r.ks_p_value for r in members]
        expected = multipletests(raw, method="holm")[1]
        got = [r.ks_p_adjusted for r in members]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


# R 4.2.2 (stats), site a the reference, the first 4 cases of each site positive:
#   a <- c(0.12, 0.31, 0.45, 0.27, 0.08, 0.19, 0.36, 0.22)
#   b <- c(0.29, 0.47, 0.58, 0.42, 0.21, 0.33, 0.49, 0.30)
#   c <- c(0.62, 0.81, 0.74, 0.58, 0.49, 0.66, 0.91, 0.55)
#   p <- c(ks.test(b, a, exact = TRUE)$p.value, ks.test(c, a, exact = TRUE)$p.value,
#          ks.test(b[1:4], a[1:4], exact = TRUE)$p.value, <c[1:4]>, <b[5:8]>, <c[5:8]>)
#   p.adjust(p, "holm"); p.adjust(p[1:2], "holm"), ... per stratum
_GOLDEN_SCORES = {
    "a": (0.12, 0.31, 0.45, 0.27, 0.08, 0.19, 0.36, 0.22),
    "b": (0.29, 0.47, 0.58, 0.42, 0.21, 0.33, 0.49, 0.30),
    "c": (0.62, 0.81, 0.74, 0.58, 0.49, 0.66, 0.91, 0.55),
}
_R_P = {("all", "b"): 0.2826728827, ("all", "c"): 0.0001554001554,
        ("positive", "b"): 0.7714285714, ("positive", "c"): 0.02857142857,
        ("negative", "b"): 0.7714285714, ("negative", "c"): 0.02857142857}  # fmt: skip
_R_HOLM_REPORT = {("all", "b"): 0.848018648, ("all", "c"): 0.0009324009324,
                  ("positive", "b"): 1.0, ("positive", "c"): 0.1428571429,
                  ("negative", "b"): 1.0, ("negative", "c"): 0.1428571429}  # fmt: skip
_R_HOLM_STRATUM = {("all", "b"): 0.2826728827, ("all", "c"): 0.0003108003108,
                   ("positive", "b"): 0.7714285714, ("positive", "c"): 0.05714285714,
                   ("negative", "b"): 0.7714285714, ("negative", "c"): 0.05714285714}  # fmt: skip


def _golden_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [{"case": f"{site}{k}", "finding": "nodule", "truth": int(k < 4), "ai_probability": p,
          "site": site} for site, values in _GOLDEN_SCORES.items() for k, p in enumerate(values)]
    )  # fmt: skip


@pytest.mark.parametrize(("family", "holm"), [("report", _R_HOLM_REPORT),
                                              ("finding_stratum", _R_HOLM_STRATUM)])  # fmt: skip
def test_exact_ks_and_holm_match_r(family: str, holm: dict[tuple[str, str], float]) -> None:
    rows = _rows(score_drift(_golden_frame(), family=family))
    for key, p in _R_P.items():
        assert rows[key].ks_p_value == pytest.approx(p, rel=1e-8)
        assert rows[key].ks_p_adjusted == pytest.approx(holm[key], rel=1e-8)
    levels = {key: rows[key].level for key in _R_P}
    flagged = {("all", "c")}
    assert {k for k, v in levels.items() if v != "stable"} == flagged
    assert rows[("all", "c")].level == "major"


def test_alpha_decides_which_adjusted_p_values_are_shifts() -> None:
    rows = _rows(score_drift(_golden_frame(), family="finding_stratum", alpha=0.06))
    # per-stratum Holm p of c: 0.000311 (all), 0.0571 (positive, negative) <= 0.06
    assert {rows[(s, "c")].level for s in ("all", "positive", "negative")} == {"major"}
    assert rows[("all", "b")].level == "stable"


def test_reference_row_is_not_a_test() -> None:
    result = score_drift(_frame(shift=0.3))
    assert result.reference == "a"
    ref = _rows(result)[("all", "a")]
    assert ref.level == "reference" and ref.n == 300  # one score per case
    assert math.isnan(ref.ks_p_value) and math.isnan(ref.psi)
    d = ref.to_dict()
    assert d["ks_p_adjusted"] is None and d["psi_ci_lower"] is None and d["mean"] is not None


def test_psi_interval_contains_psi_and_is_seeded_per_comparison() -> None:
    result = score_drift(_frame(shift=0.3))
    again = score_drift(_frame(shift=0.3))
    assert result == again
    shifted = _rows(result)[("all", "c")]
    assert shifted.level == "major"
    assert shifted.psi_ci_lower < shifted.psi < shifted.psi_ci_upper
    # another seed moves the interval; dropping a site leaves the other rows' streams alone
    other = _rows(score_drift(_frame(shift=0.3), seed=1))[("all", "c")]
    assert other.psi_ci_lower != shifted.psi_ci_lower
    frame = _frame(shift=0.3)
    without_b = _rows(score_drift(frame[frame["site"] != "b"]))[("all", "c")]
    assert without_b.psi_ci_lower == shifted.psi_ci_lower


def test_psi_interval_is_the_percentile_interval_of_a_loop_over_resamples() -> None:
    rng = np.random.default_rng(8)
    ref, new = rng.beta(2, 5, 60), rng.beta(3, 4, 45)
    lo, hi = psi_interval(ref, new, alpha=0.1, n_boot=300, rng=np.random.default_rng(42))
    draw = np.random.default_rng(42)
    i_ref, i_new = draw.integers(0, 60, (300, 60)), draw.integers(0, 45, (300, 45))
    reps = [psi(ref[a], new[b]) for a, b in zip(i_ref, i_new, strict=True)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(reps, [0.05, 0.95])), abs=1e-12)
    assert psi_interval(ref, new[:0], rng=draw) == pytest.approx((math.nan, math.nan), nan_ok=True)


def test_ks_matches_scipy_on_the_case_scores() -> None:
    frame = _frame(shift=0.1)
    result = score_drift(frame, reference="b", n_boot=0)
    scores = case_scores(frame)
    ref = scores.loc[scores["site"] == "b", "ai_probability"]
    new = scores.loc[scores["site"] == "c", "ai_probability"]
    expected = stats.ks_2samp(new, ref)
    row = next(r for r in result.rows if r.site == "c" and r.stratum == "all")
    assert row.ks_statistic == pytest.approx(expected.statistic)
    assert row.ks_p_value == pytest.approx(expected.pvalue)


def test_strata_compare_positive_and_negative_cases_separately() -> None:
    result = score_drift(_frame(shift=0.0), n_boot=0)
    pos = next(r for r in result.rows if r.site == "b" and r.stratum == "positive")
    assert pos.n == 100


def test_site_without_scores_in_a_stratum_is_not_tested() -> None:
    frame = _sites(2, {"a": 0.0, "b": 0.0, "c": 0.0})
    frame = frame[~((frame["site"] == "c") & (frame["truth"] == 1))]
    rows = _rows(score_drift(frame))
    assert rows[("positive", "c")].level == "n/a"
    assert math.isnan(rows[("positive", "c")].ks_p_adjusted)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="reference"):
        score_drift(_frame(0.0), reference="zzz")
    frame = _frame(0.0).assign(ai_probability=math.nan)
    with pytest.raises(ValueError, match="no AI probabilities"):
        score_drift(frame)
    with pytest.raises(ValueError, match="missing column"):
        score_drift(_frame(0.0).drop(columns="site"))
    with pytest.raises(ValueError, match="alpha"):
        score_drift(_frame(0.0), alpha=1.0)
    with pytest.raises(ValueError, match="family"):
        score_drift(_frame(0.0), family="site")
    with pytest.raises(ValueError, match="n_boot"):
        score_drift(_frame(0.0), n_boot=-1)


def test_to_dict_is_strict_json_and_figure_has_a_trace_per_site() -> None:
    long = simulate_long_frame(2, n_readers=2, n_cases=30)
    result = score_drift(long, alpha=0.01)
    payload = result.to_dict()
    json.dumps(payload, allow_nan=False)
    assert payload["alpha"] == 0.01 and "Holm" in payload["method"]
    assert {"ks_p_adjusted", "psi_ci_lower", "psi_ci_upper", "level"} <= set(payload["rows"][0])
    fig = score_distribution_figure(long)
    assert len(fig.data) == 2 * long["site"].nunique()


def test_the_rows_do_not_depend_on_the_order_of_the_reads() -> None:
    # the platform's frame and its exported CSV list the same reads in different orders
    frame = pd.concat([_sites(7, {"north": 0.0, "south": 0.1}), _sites(8, {"east": 0.0}, n=30)])
    result = score_drift(frame)
    assert result.reference == "east"  # the site with the most cases
    shuffled = score_drift(frame.sample(frac=1.0, random_state=3))
    assert shuffled.to_dict() == result.to_dict()
    tie = score_drift(_sites(9, {"b": 0.0, "a": 0.0}))
    assert tie.reference == "a"  # among equals, the first by name
