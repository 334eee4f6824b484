"""Tests of analysis.missed against brute-force counts and direct model fits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from analysis.missed import POOLED_METHOD, missed_findings
from analysis.simulate import simulate_long_frame

DATA = Path(__file__).resolve().parents[1] / "data"


def norm_sf(z: float) -> float:
    return float(ndtr(-z))


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(3, n_readers=4, n_cases=40)


def test_rates_are_reader_averaged_miss_and_false_positive_proportions(long: pd.DataFrame) -> None:
    res = missed_findings(long)
    nodule = next(f for f in res.findings if f.finding == "nodule")
    reads = long[long["finding"] == "nodule"]
    for kind, truth in (("missed", 1), ("false_positive", 0)):
        analysis = getattr(nodule, kind)
        for arm_rate in analysis.arms:
            sub = reads[(reads["arm"] == arm_rate.arm) & (reads["truth"] == truth)]
            event = sub["call"] != truth
            assert arm_rate.n == len(sub) and arm_rate.events == int(event.sum())
            brute = event.groupby(sub["reader"]).mean().mean()
            assert arm_rate.rate == pytest.approx(brute, abs=1e-12)
            assert arm_rate.ci_lower <= arm_rate.rate <= arm_rate.ci_upper
            assert arm_rate.estimand == "reader-averaged"
        u, a = analysis.arms
        assert analysis.or_difference is not None
        assert analysis.or_difference.estimate == pytest.approx(a.rate - u.rate, abs=1e-12)


def _vandyke_long() -> pd.DataFrame:
    d = pd.read_csv(DATA / "vandyke.csv")
    return pd.DataFrame(
        {"reader": d["reader"], "case": d["case"],
         "arm": d["treatment"].map({1: "unassisted", 2: "assisted"}), "finding": "lesion",
         "truth": d["truth"], "call": (d["rating"] >= 3).astype(int), "ai_probability": np.nan}
    )  # fmt: skip


# MRMCaov 0.3.0 on vandyke.csv with call = rating >= 3 (treatment 1 = unassisted):
#   d$call <- as.numeric(d$rating >= 3)
#   summary(mrmc(binary_sens(truth, call), treatment, reader, case, data = d))
#   summary(mrmc(binary_spec(truth, call), treatment, reader, case, data = d))
# sens: "1 - 2" -0.09777777778 SE 0.03780450629 df 15.71732443 CI (-0.17803705320, -0.01751850235)
#       p 0.02008822008; treatment 1 0.8222222222 (0.6961876296, 0.9482568148),
#       treatment 2 0.92 (0.8328691079, 1)
# spec: "1 - 2" 0.01449275362 SE 0.03226828092 df 5.572641311 CI (-0.06595616282, 0.09494167006)
#       p 0.6702700973; treatment 1 0.8550724638 (0.7891162725, 0.9210286551),
#       treatment 2 0.8405797101 (0.7183428329, 0.9628165874)
# missed = 1 - sens and false positive = 1 - spec, so assisted - unassisted of the rate is the
# "1 - 2" difference of sens (spec) and the arm intervals are 1 minus the reversed ones.
MRMCAOV_BINARY = {
    "missed": (
        (-0.09777777778, 0.03780450629, 15.71732443, -0.17803705320, -0.01751850235,
         0.02008822008),
        ((0.8222222222, 0.6961876296, 0.9482568148), (0.92, 0.8328691079, 1.0)),
    ),
    "false_positive": (
        (0.01449275362, 0.03226828092, 5.572641311, -0.06595616282, 0.09494167006,
         0.6702700973),
        ((0.8550724638, 0.7891162725, 0.9210286551), (0.8405797101, 0.7183428329, 0.9628165874)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", ["missed", "false_positive"])
def test_or_analysis_of_a_rate_is_mrmcaov_binary_sens_and_spec(kind: str) -> None:
    res = getattr(missed_findings(_vandyke_long()).findings[0], kind)
    (est, se, df, lo, hi, p), arms = MRMCAOV_BINARY[kind]
    d = res.or_difference
    assert d is not None and res.or_error is None
    assert (d.estimate, d.se, d.df, d.ci_lower, d.ci_upper, d.p_value) == pytest.approx(
        (est, se, df, lo, hi, p), rel=1e-9, abs=1e-9
    )
    for arm, (value, v_lo, v_hi) in zip(res.arms, arms, strict=True):
        assert arm.estimand == "reader-averaged" and arm.method.startswith("OR")
        assert (arm.rate, arm.ci_lower, arm.ci_upper) == pytest.approx(
            (1 - value, 1 - v_hi, 1 - v_lo), abs=1e-9
        )


def test_gee_difference_equals_raw_difference_in_a_balanced_crossover(long: pd.DataFrame) -> None:
    res = missed_findings(long)
    f = res.findings[0]
    assert f.missed.gee is not None
    u, a = f.missed.arms
    raw = a.events / a.n - u.events / u.n
    assert f.missed.gee.difference.estimate == pytest.approx(raw, abs=1e-6)
    g = f.missed.gee
    assert g.or_ci_lower < g.odds_ratio < g.or_ci_upper
    assert 0 <= g.p_value <= 1


def test_split_of_misses_counts_ai_flags_at_threshold(long: pd.DataFrame) -> None:
    res = missed_findings(long, ai_threshold={"nodule": 0.3, "pneumothorax": 0.7})
    for f in res.findings:
        if f.finding == "pooled":
            continue
        thr = res.ai_threshold[f.finding]
        for s in f.split:
            miss = long[(long["finding"] == f.finding) & (long["arm"] == s.arm)
                        & (long["truth"] == 1) & (long["call"] == 0)]  # fmt: skip
            assert s.missed == len(miss)
            assert s.ai_flagged == int((miss["ai_probability"] >= thr).sum())
            assert s.ai_flagged + s.ai_missed + s.ai_unavailable == s.missed


def test_pooled_entry_covers_the_significant_types(long: pd.DataFrame) -> None:
    res = missed_findings(long, significant=["nodule"])
    pooled = res.findings[-1]
    assert pooled.finding == "pooled" and pooled.findings_pooled == ("nodule",)
    both = missed_findings(long).findings[-1]
    assert both.findings_pooled == ("pneumothorax", "nodule")
    n_pos = int((long["truth"] == 1).sum() / 2)
    assert sum(a.n for a in both.missed.arms) == 2 * n_pos


def _part_way(long: pd.DataFrame) -> pd.DataFrame:
    """reader-1 stopped after the first half of the cases in the assisted arm."""
    cases = sorted(long["case"].unique())
    late = long["case"].isin(cases[len(cases) // 2 :])
    return long[~((long["reader"] == "reader-1") & (long["arm"] == "assisted") & late)]


def test_part_way_reader_gives_the_pooled_rate_with_a_case_clustered_interval(
    long: pd.DataFrame,
) -> None:
    import statsmodels.api as sm
    from statsmodels.genmod.cov_struct import Independence
    from statsmodels.stats.proportion import proportion_confint

    partial = _part_way(long)
    res = missed_findings(partial)
    for f in res.findings:
        for kind in ("missed", "false_positive"):
            analysis = getattr(f, kind)
            assert analysis.or_difference is None
            assert "reader-1" in (analysis.or_error or "")
            assert analysis.gee is not None
            for arm in analysis.arms:
                assert arm.estimand == "pooled" and arm.method == POOLED_METHOD
                assert arm.rate == arm.events / arm.n
                assert arm.ci_lower <= arm.rate <= arm.ci_upper
    # independent check of one interval: the robust variance of an intercept-only GEE
    # (independence, clusters = cases) times K / (K - 1), then Wilson on n / deff
    reads = partial[(partial["finding"] == "nodule") & (partial["truth"] == 1)
                    & (partial["arm"] == "assisted")]  # fmt: skip
    y = (reads["call"] == 0).to_numpy(dtype=float)
    fit = sm.GEE(y, np.ones((y.size, 1)), groups=reads["case"], family=sm.families.Binomial(),
                 cov_struct=Independence()).fit()  # fmt: skip
    p, n, k = y.mean(), y.size, reads["case"].nunique()
    var_p = (p * (1 - p)) ** 2 * float(fit.cov_params()[0, 0]) * k / (k - 1)
    n_eff = n / max(var_p / (p * (1 - p) / n), 1.0)
    lo, hi = proportion_confint(p * n_eff, n_eff, method="wilson")
    arm = next(f for f in res.findings if f.finding == "nodule").missed.arms[1]
    assert (arm.rate, arm.ci_lower, arm.ci_upper) == pytest.approx((p, lo, hi), abs=1e-10)


def test_gee_is_statsmodels_gee_clustered_on_case(long: pd.DataFrame) -> None:
    import statsmodels.api as sm
    from statsmodels.genmod.cov_struct import Exchangeable

    partial = _part_way(long)  # unbalanced: exchangeable and independence GEE differ
    res = missed_findings(partial, significant=["pneumothorax", "nodule"])
    for f in res.findings:
        reads = partial[partial["finding"].isin(f.findings_pooled) & (partial["truth"] == 1)]
        y = (reads["call"] == 0).to_numpy(dtype=float)
        x = (reads["arm"] == "assisted").to_numpy(dtype=float)
        model = sm.GEE(y, np.column_stack([np.ones_like(x), x]), groups=reads["case"],
                       family=sm.families.Binomial(), cov_struct=Exchangeable())  # fmt: skip
        fit = model.fit(ctol=1e-13, maxiter=500)
        b, cov = np.asarray(fit.params), np.asarray(fit.cov_params())
        g = f.missed.gee
        assert g is not None
        assert g.n_clusters == reads["case"].nunique()
        assert g.odds_ratio == pytest.approx(math.exp(b[1]), abs=1e-8)
        assert g.working_correlation == pytest.approx(model.cov_struct.dep_params, abs=1e-8)
        z = 1.959963984540054
        assert g.or_ci_upper == pytest.approx(math.exp(b[1] + z * math.sqrt(cov[1, 1])), abs=1e-8)
        assert g.p_value == pytest.approx(2 * norm_sf(abs(b[1]) / math.sqrt(cov[1, 1])), abs=1e-8)


def test_pooled_analysis_leaves_out_whole_cases(long: pd.DataFrame) -> None:
    # a second finding type that copies the first read for read: pooled over both, each case's
    # two findings move together, so clustering on the case gives the one-type results, while
    # treating case|finding as independent units would shrink the SE by sqrt(2)
    one = long[long["finding"] == "nodule"]
    both = pd.concat([one, one.assign(finding="nodule-copy")], ignore_index=True)
    res = missed_findings(both)
    single, pooled = res.findings[0], res.findings[-1]
    assert pooled.finding == "pooled"
    for kind in ("missed", "false_positive"):
        a, b = getattr(single, kind), getattr(pooled, kind)
        assert a.or_difference is not None and b.or_difference is not None
        assert b.or_difference.se == pytest.approx(a.or_difference.se, rel=1e-10)
        assert b.or_difference.p_value == pytest.approx(a.or_difference.p_value, rel=1e-10)
        for x, y in zip(a.arms, b.arms, strict=True):
            assert (y.ci_lower, y.ci_upper) == pytest.approx((x.ci_lower, x.ci_upper), rel=1e-10)
        assert a.gee is not None and b.gee is not None
        assert b.gee.p_value == pytest.approx(a.gee.p_value, rel=1e-8)
        assert b.gee.n_clusters == a.gee.n_clusters


def test_to_dict_is_json_serializable(long: pd.DataFrame) -> None:
    import json

    text = json.dumps(missed_findings(long).to_dict(), allow_nan=False)
    assert '"ai_flagged_reader_dismissed"' in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="call"), "missing column"),
        (lambda d: d[d["arm"] == "assisted"], "both arms"),
        (lambda d: d.assign(call=2), "call must be 0 or 1"),
    ],
)
def test_bad_input_raises_value_error(long: pd.DataFrame, mutate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        missed_findings(mutate(long))


def test_unknown_significant_type_rejected(long: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not in the data"):
        missed_findings(long, significant=["fracture"])


def test_no_events_in_an_arm_skips_gee_with_a_reason(long: pd.DataFrame) -> None:
    perfect = long.assign(call=np.where(long["arm"] == "assisted", long["truth"], long["call"]))
    f = missed_findings(perfect).findings[0]
    assert f.missed.gee is None and "not estimable" in (f.missed.gee_error or "")
