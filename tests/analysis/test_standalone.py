"""Tests of analysis.standalone against brute-force computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.simulate import simulate_long_frame
from analysis.standalone import ai_performance, ai_standalone, wilson


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return simulate_long_frame(4, n_readers=4, n_cases=60)


def _brute_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    return float(psi.mean()), math.sqrt(var)


def test_auc_and_delong_se_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 70)
    prob = np.round(rng.random(70) * 0.6 + 0.3 * truth, 2)  # rounded: ties occur
    perf = ai_performance(truth, prob, threshold=0.5)
    auc, se = _brute_delong(prob[truth == 1], prob[truth == 0])
    assert perf.auc == pytest.approx(auc, rel=1e-12)
    assert perf.auc_se == pytest.approx(se, rel=1e-10)
    assert perf.auc_ci_lower == pytest.approx(max(0.0, auc - 1.959963984540054 * se))


def test_wilson_interval_matches_the_closed_form() -> None:
    # Wilson (1927): (p + z^2/2n +/- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    x, n, z = 17, 40, 1.959963984540054
    p = x / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    w = wilson(x, n)
    assert (w.ci_lower, w.ci_upper) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_sensitivity_and_specificity_use_the_threshold_inclusively() -> None:
    perf = ai_performance(np.array([1, 1, 0, 0]), np.array([0.5, 0.4, 0.5, 0.1]), threshold=0.5)
    assert (perf.sensitivity.events, perf.sensitivity.n) == (1, 2)
    assert (perf.specificity.events, perf.specificity.n) == (1, 2)


def test_subgroups_partition_the_cases(long: pd.DataFrame) -> None:
    res = ai_standalone(long, ai_threshold={"nodule": 0.4})
    for f in res.findings:
        assert f.threshold == (0.4 if f.finding == "nodule" else 0.5)
        for col in ("site", "manufacturer", "modality"):
            subs = [s for s in f.subgroups if s.group == col]
            assert sum(s.n_positive for s in subs) == f.overall.n_positive
            assert sum(s.n_negative for s in subs) == f.overall.n_negative


def test_ai_versus_readers_is_the_2t_rrrc_or_analysis(long: pd.DataFrame) -> None:
    from analysis.mrmc import or_analysis

    res = ai_standalone(long)
    f = res.findings[0]
    vs = f.versus_readers
    assert vs is not None and f.versus_readers_error is None
    assert vs.ai_auc == pytest.approx(f.overall.auc)
    reads = long[(long["finding"] == f.finding) & (long["arm"] == "unassisted")]
    ai = reads.drop_duplicates("case")
    frame = pd.concat(
        [
            pd.DataFrame({"reader": r, "treatment": "AI", "case": ai["case"],
                          "truth": ai["truth"], "rating": ai["ai_probability"]})
            for r in reads["reader"].unique()
        ]
        + [reads.rename(columns={"arm": "treatment", "confidence": "rating"})[
            ["reader", "treatment", "case", "truth", "rating"]]]
    )  # fmt: skip
    ref = or_analysis(frame).differences[0]
    assert vs.estimate == pytest.approx(ref.estimate)
    assert vs.p_value == pytest.approx(ref.p_value)
    assert vs.readers_auc == pytest.approx(np.mean(list(vs.reader_auc.values())))


def test_subgroup_with_one_truth_class_has_no_auc() -> None:
    perf = ai_performance(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.7]), threshold=0.5)
    assert math.isnan(perf.auc) and perf.specificity.n == 0
    assert perf.to_dict()["auc"] is None


def test_to_dict_is_json_serializable(long: pd.DataFrame) -> None:
    import json

    json.dumps(ai_standalone(long).to_dict(), allow_nan=False)


def test_inconsistent_ai_probability_rejected(long: pd.DataFrame) -> None:
    bad = long.copy()
    bad.loc[bad.index[0], "ai_probability"] = 0.123456
    with pytest.raises(ValueError, match="ai_probability differs"):
        ai_standalone(bad)


def test_missing_column_rejected(long: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        ai_standalone(long.drop(columns="ai_probability"))
