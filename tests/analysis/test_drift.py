"""Tests of analysis.drift: PSI and KS of the AI scores per site against the first site."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.drift import case_scores, psi, score_distribution_figure, score_drift
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


def test_reference_site_against_itself_shows_no_drift_and_shifted_site_does() -> None:
    result = score_drift(_frame(shift=0.3))
    assert result.reference == "a"
    rows = {(r.stratum, r.site): r for r in result.rows}
    assert rows[("all", "a")].ks_statistic == 0 and rows[("all", "a")].psi == pytest.approx(0)
    assert rows[("all", "a")].n == 300  # one score per case, not per read
    assert rows[("all", "c")].level == "major" and rows[("all", "c")].ks_p_value < 1e-6
    assert rows[("all", "b")].ks_p_value > 0.001


def test_ks_matches_scipy_on_the_case_scores() -> None:
    frame = _frame(shift=0.1)
    result = score_drift(frame, reference="b")
    scores = case_scores(frame)
    ref = scores.loc[scores["site"] == "b", "ai_probability"]
    new = scores.loc[scores["site"] == "c", "ai_probability"]
    expected = stats.ks_2samp(new, ref)
    row = next(r for r in result.rows if r.site == "c" and r.stratum == "all")
    assert row.ks_statistic == pytest.approx(expected.statistic)
    assert row.ks_p_value == pytest.approx(expected.pvalue)


def test_strata_compare_positive_and_negative_cases_separately() -> None:
    result = score_drift(_frame(shift=0.0))
    pos = next(r for r in result.rows if r.site == "b" and r.stratum == "positive")
    assert pos.n == 100


def test_unknown_reference_and_missing_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="reference"):
        score_drift(_frame(0.0), reference="zzz")
    frame = _frame(0.0).assign(ai_probability=math.nan)
    with pytest.raises(ValueError, match="no AI probabilities"):
        score_drift(frame)
    with pytest.raises(ValueError, match="missing column"):
        score_drift(_frame(0.0).drop(columns="site"))


def test_to_dict_is_strict_json_and_figure_has_a_trace_per_site() -> None:
    import json

    long = simulate_long_frame(2, n_readers=2, n_cases=30)
    result = score_drift(long)
    json.dumps(result.to_dict(), allow_nan=False)
    fig = score_distribution_figure(long)
    assert len(fig.data) == 2 * long["site"].nunique()
