"""Tests of the Roe-Metz simulator and the synthetic long reads frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.simulate import (
    LONG_COLUMNS,
    ROE_METZ_STRUCTURES,
    RoeMetzParams,
    population_auc,
    roe_metz_params,
    simulate_long_frame,
    simulate_roe_metz,
)


def test_same_seed_gives_identical_data_and_other_seed_differs() -> None:
    a = simulate_roe_metz(n_readers=3, n_positive=4, n_negative=5, seed=7)
    b = simulate_roe_metz(n_readers=3, n_positive=4, n_negative=5, seed=7)
    c = simulate_roe_metz(n_readers=3, n_positive=4, n_negative=5, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["rating"], c["rating"])


def test_output_is_fully_crossed_in_the_mrmc_shape() -> None:
    d = simulate_roe_metz(n_readers=3, n_positive=4, n_negative=5, mu=(1.0, 1.0, 2.0), seed=1)
    assert list(d.columns) == ["reader", "treatment", "case", "truth", "rating"]
    assert len(d) == 3 * 3 * 9
    assert d.groupby(["treatment", "reader"]).size().eq(9).all()
    assert d.groupby("case")["truth"].nunique().eq(1).all()
    assert d.drop_duplicates("case")["truth"].sum() == 4


def test_every_named_structure_has_unit_case_variance() -> None:
    for name in ("HH", "HL", "LH", "LL"):
        for mu in (0.75, 1.5, 2.5):
            p = roe_metz_params(name, mu)
            assert p.var_C + p.var_TC + p.var_RC + p.var_error == pytest.approx(1.0)
            assert p.var_R == p.var_TR


@pytest.mark.parametrize(
    ("name", "mu", "expected"),
    [
        # iMRMC RMconfigurations/HH0p75_050n0_050n1_5nr.irm: R .011, AR .011, C .3, AC .3,
        # RC .2, ARC .2 (github.com/DIDSR/iMRMC, Roe & Metz 1997 replication files)
        ("HH", 0.75, (0.011, 0.011, 0.3, 0.3, 0.2, 0.2)),
        # HL1p50_050n0_050n1_5r.irm: R .0055, AR .0055, C .3, AC .3, RC .2, ARC .2
        ("HL", 1.5, (0.0055, 0.0055, 0.3, 0.3, 0.2, 0.2)),
        # LH2p50_050n0_050n1_5nr.irm: R .056, AR .056, C .1, AC .1, RC .2, ARC .6
        ("LH", 2.5, (0.056, 0.056, 0.1, 0.1, 0.2, 0.6)),
        # LL1p50_050n0_050n1_5nr.irm: R .0055, AR .0055, C .1, AC .1, RC .2, ARC .6
        ("LL", 1.5, (0.0055, 0.0055, 0.1, 0.1, 0.2, 0.6)),
    ],
)
def test_named_structures_match_imrmc_replication_files(
    name: str, mu: float, expected: tuple[float, ...]
) -> None:
    p = roe_metz_params(name, mu)
    assert (p.var_R, p.var_TR, p.var_C, p.var_TC, p.var_RC, p.var_error) == expected
    assert ROE_METZ_STRUCTURES[name] == roe_metz_params(name, 0.75)


def test_unpublished_mu_or_structure_rejected() -> None:
    with pytest.raises(ValueError, match="tabulate"):
        roe_metz_params("HH", 1.0)
    with pytest.raises(ValueError, match="structure"):
        roe_metz_params("HX")


def test_covariances_between_ratings_match_the_variance_components() -> None:
    # brute force: across many cases of one class, sample covariances of ratings that share
    # (case) / (case, reader) / (case, treatment) estimate var_C / +var_RC / +var_TC
    p = RoeMetzParams(var_R=0.0, var_TR=0.0, var_C=0.3, var_TC=0.1, var_RC=0.2, var_error=0.4)
    d = simulate_roe_metz(n_readers=2, n_positive=1, n_negative=40000, mu=0.0, structure=p,
                          seed=3)  # fmt: skip
    x = d[d["truth"] == 0].pivot_table(index="case", columns=["treatment", "reader"],
                                       values="rating")  # fmt: skip
    cov = np.cov(x.to_numpy().T)
    # columns: (1,1), (1,2), (2,1), (2,2)
    assert cov[0, 3] == pytest.approx(0.3, abs=0.02)  # other treatment, other reader
    assert cov[0, 2] == pytest.approx(0.5, abs=0.02)  # same reader
    assert cov[0, 1] == pytest.approx(0.4, abs=0.02)  # same treatment
    assert cov[0, 0] == pytest.approx(1.0, abs=0.03)


def test_mean_reader_auc_matches_population_auc() -> None:
    d = simulate_roe_metz(n_readers=40, n_positive=400, n_negative=400, mu=0.75, seed=11)
    aucs = []
    for _, g in d.groupby(["treatment", "reader"]):
        pos = g.loc[g["truth"] == 1, "rating"]
        neg = g.loc[g["truth"] == 0, "rating"]
        u = stats.mannwhitneyu(pos, neg).statistic
        aucs.append(u / (len(pos) * len(neg)))
    assert np.mean(aucs) == pytest.approx(population_auc(0.75, "HH"), abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_readers": 0, "n_positive": 1, "n_negative": 1}, "at least 1"),
        ({"n_readers": 1, "n_positive": 1, "n_negative": 1, "structure": "XX"}, "structure"),
        ({"n_readers": 1, "n_positive": 1, "n_negative": 1, "mu": [np.nan]}, "mu"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_roe_metz(**kwargs)  # type: ignore[arg-type]


def test_negative_variance_rejected() -> None:
    with pytest.raises(ValueError, match="var_R"):
        RoeMetzParams(var_R=-1, var_TR=0, var_C=0, var_TC=0, var_RC=0, var_error=1)


def test_long_frame_follows_the_contract_and_is_deterministic() -> None:
    a = simulate_long_frame(5, n_readers=3, n_cases=20)
    pd.testing.assert_frame_equal(a, simulate_long_frame(5, n_readers=3, n_cases=20))
    assert tuple(a.columns) == LONG_COLUMNS
    assert len(a) == 3 * 20 * 2 * 2  # readers x cases x arms x findings
    assert set(a["arm"]) == {"unassisted", "assisted"}
    assert a["confidence"].between(0, 100).all()
    assert (a["call"] == (a["confidence"] >= 50)).all()
    # crossover: each reader reads each case once per arm, in different sessions
    per = a.groupby(["reader", "case", "finding"])["session"].nunique()
    assert per.eq(2).all()
    # truth and AI probability are properties of the case, not of the read
    assert a.groupby(["case", "finding"])["truth"].nunique().eq(1).all()
    assert a.groupby(["case", "finding"])["ai_probability"].nunique().eq(1).all()


def test_long_frame_repeats_one_duration_per_read_across_findings() -> None:
    a = simulate_long_frame(2, n_readers=2, n_cases=10)
    per_read = a.groupby(["reader", "case", "arm"])[["duration_s", "started_at"]].nunique()
    assert per_read.eq(1).all().all()
