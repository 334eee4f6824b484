"""Tests of analysis.missed against brute-force counts and direct model fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.missed import missed_findings
from analysis.mrmc import or_analysis
from analysis.simulate import simulate_long_frame


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
        u, a = analysis.arms
        assert analysis.or_difference is not None
        assert analysis.or_difference.estimate == pytest.approx(a.rate - u.rate, abs=1e-12)


def test_or_difference_is_the_mrmc_sensitivity_analysis(long: pd.DataFrame) -> None:
    reads = long[long["finding"] == "pneumothorax"]
    frame = pd.DataFrame(
        {"reader": reads["reader"], "treatment": reads["arm"], "case": reads["case"],
         "truth": reads["truth"], "rating": reads["call"]}
    )  # fmt: skip
    frame = frame.sort_values("treatment", key=lambda s: s.map({"unassisted": 0, "assisted": 1}))
    ref = or_analysis(frame, metric="sensitivity").differences[0]
    assert ref.pair == "unassisted - assisted"
    got = next(f for f in missed_findings(long).findings if f.finding == "pneumothorax")
    d = got.missed.or_difference
    assert d is not None
    assert (d.estimate, d.se, d.p_value) == pytest.approx((ref.estimate, ref.se, ref.p_value))
    assert (d.ci_lower, d.ci_upper) == pytest.approx((ref.ci_lower, ref.ci_upper))


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


def test_design_that_is_not_crossed_falls_back_to_wilson(long: pd.DataFrame) -> None:
    # drop one reader's assisted reads: OR needs a fully crossed design
    partial = long[~((long["reader"] == "reader-1") & (long["arm"] == "assisted"))]
    f = missed_findings(partial).findings[0]
    assert f.missed.or_difference is None and f.missed.or_error
    assert f.missed.arms[0].ci_method.startswith("Wilson")
    assert f.missed.gee is not None


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
