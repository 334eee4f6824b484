"""Tests of analysis.agreement against SAS, R irr and statsmodels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats import inter_rater as sm

from analysis.agreement import (
    cohen_kappa,
    cohen_kappa_table,
    fleiss_kappa,
    fleiss_kappa_null_test,
    kappa_analysis,
    long_frame_agreement,
)

# SAS PROC FREQ printout quoted in statsmodels/stats/tests/test_inter_rater.py (table10):
# simple kappa 0.4842, ASE 0.1380, 95% CI (0.2137, 0.7547);
# weighted (Cicchetti-Allison) kappa 0.4701, ASE 0.1457, 95% CI (0.1845, 0.7558).
TABLE10 = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]

# Fleiss (1971) psychiatric diagnoses, 30 subjects x 6 raters (R irr `diagnoses`, as coded in
# statsmodels' test_inter_rater.py). R: irr::kappam.fleiss(diagnoses) -> Kappa = 0.4302445,
# z = 17.65183 (z = kappa / se0, se0 of Fleiss, Nee & Landis 1979).
DIAGNOSES = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]
)  # fmt: skip


def test_unweighted_kappa_matches_sas_printout() -> None:
    est = cohen_kappa_table(TABLE10)
    assert est.kappa == pytest.approx(0.4842, abs=5e-5)
    assert est.se == pytest.approx(0.1380, abs=5e-5)
    assert (est.ci_lower, est.ci_upper) == pytest.approx((0.2137, 0.7547), abs=5e-5)


def test_linear_weighted_kappa_matches_sas_printout() -> None:
    est = cohen_kappa_table(TABLE10, weights="linear")
    assert est.kappa == pytest.approx(0.4701, abs=5e-5)
    assert est.se == pytest.approx(0.1457, abs=5e-5)
    assert (est.ci_lower, est.ci_upper) == pytest.approx((0.1845, 0.7558), abs=5e-5)


@pytest.mark.parametrize(
    ("weights", "wt"), [("none", None), ("linear", "linear"), ("quadratic", "quadratic")]
)
def test_kappa_and_se_match_statsmodels_on_random_tables(weights: str, wt: str | None) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        table = rng.integers(0, 12, size=(4, 4)) + 6 * np.eye(4)
        ours = cohen_kappa_table(table, weights=weights)  # type: ignore[arg-type]
        ref = sm.cohens_kappa(table, wt=wt) if wt else sm.cohens_kappa(table)
        assert ours.kappa == pytest.approx(ref.kappa, rel=1e-10)
        assert ours.se == pytest.approx(ref.std_kappa, rel=1e-10)


def test_fleiss_kappa_and_null_test_match_irr_diagnoses() -> None:
    counts, _ = sm.aggregate_raters(DIAGNOSES)
    est = fleiss_kappa(counts)
    assert est.kappa == pytest.approx(0.4302445, abs=1e-7)
    assert est.kappa == pytest.approx(sm.fleiss_kappa(counts), rel=1e-12)
    se0, z, p = fleiss_kappa_null_test(counts)
    assert z == pytest.approx(17.65183, abs=1e-4)
    assert est.kappa / se0 == pytest.approx(z, rel=1e-12)
    assert p < 1e-60


def _jackknife_by_deletion(counts: np.ndarray) -> float:
    """Jackknife SE of Fleiss' kappa by recomputing statsmodels' kappa without each item."""
    n = counts.shape[0]
    loo = np.array([sm.fleiss_kappa(np.delete(counts, i, axis=0)) for i in range(n)])
    return math.sqrt((n - 1) / n * float(np.sum((loo - loo.mean()) ** 2)))


def test_fleiss_se_is_the_jackknife_over_items() -> None:
    counts, _ = sm.aggregate_raters(DIAGNOSES)
    est = fleiss_kappa(counts)
    assert est.se == pytest.approx(_jackknife_by_deletion(counts), rel=1e-10)
    t29 = 2.045229642132703  # R: qt(0.975, 29)
    assert (est.ci_lower, est.ci_upper) == pytest.approx(
        (est.kappa - t29 * est.se, est.kappa + t29 * est.se), rel=1e-10
    )
    rng = np.random.default_rng(11)
    for _ in range(5):
        ratings = rng.integers(0, 4, size=(25, 4))
        table, _ = sm.aggregate_raters(ratings)
        assert fleiss_kappa(table).se == pytest.approx(_jackknife_by_deletion(table), rel=1e-10)


def test_fleiss_interval_through_kappa_analysis_is_clipped_to_one() -> None:
    # 6 items, 3 raters who agree on all but one item: kappa 0.8, jackknife SE wide
    ratings = [[1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2], [1, 1, 1], [1, 2, 2]]
    rows = [
        {"rater": f"r{j}", "item": i, "rating": r}
        for i, item in enumerate(ratings)
        for j, r in enumerate(item)
    ]
    fl = kappa_analysis(pd.DataFrame(rows)).fleiss
    assert fl.kappa + 2.570581835636314 * fl.se > 1.0  # R: qt(0.975, 5)
    assert fl.ci_upper == 1.0 and -1.0 <= fl.ci_lower <= fl.kappa


def test_cohen_interval_is_clipped_to_one() -> None:
    # kappa 0.77 on 23 items, ASE 0.22: the unclipped upper limit is 1.21
    _, est = cohen_kappa(np.r_[np.zeros(21), np.ones(2)], np.r_[np.zeros(20), np.ones(3)])
    assert est.kappa + 1.959963984540054 * est.se > 1.0
    assert est.ci_upper == 1.0 and est.ci_lower <= est.kappa


def test_kappa_analysis_reproduces_pairwise_and_fleiss() -> None:
    rows = [
        {"rater": f"r{j + 1}", "item": i, "rating": int(DIAGNOSES[i, j])}
        for i in range(30)
        for j in range(6)
    ]
    res = kappa_analysis(pd.DataFrame(rows), weights="quadratic")
    d = res.to_dict()
    assert d["n_items"] == 30 and d["n_raters"] == 6
    assert d["categories"] == ["1", "2", "3", "4", "5"]
    assert len(d["pairs"]) == 15
    assert d["fleiss"]["kappa"] == pytest.approx(0.4302445, abs=1e-7)
    first = d["pairs"][0]
    assert (first["rater_a"], first["rater_b"], first["n"]) == ("r1", "r2", 30)
    table = np.zeros((5, 5))
    np.add.at(table, (DIAGNOSES[:, 0] - 1, DIAGNOSES[:, 1] - 1), 1)
    ref = sm.cohens_kappa(table, wt="quadratic")
    assert first["kappa"] == pytest.approx(ref.kappa, rel=1e-10)
    assert first["se"] == pytest.approx(ref.std_kappa, rel=1e-10)
    assert first["percent_agreement"] == pytest.approx(
        100 * np.mean(DIAGNOSES[:, 0] == DIAGNOSES[:, 1])
    )


def test_pairs_use_only_items_both_rated_and_fleiss_only_complete_items() -> None:
    frame = pd.DataFrame(
        {
            "rater": ["a", "a", "a", "b", "b", "c", "c", "c"],
            "item": [1, 2, 3, 1, 2, 1, 2, 3],
            "rating": [1, 2, 1, 1, 2, 1, 1, 1],
        }
    )
    res = kappa_analysis(frame)
    assert [p.n for p in res.pairs] == [2, 3, 2]
    assert res.pairs[0].percent_agreement == 100.0


def test_constant_raters_give_undefined_kappa_as_null() -> None:
    pct, est = cohen_kappa(np.ones(5), np.ones(5))
    assert pct == 100.0 and math.isnan(est.kappa)
    frame = pd.DataFrame({"rater": ["a", "b"], "item": [1, 1], "rating": [1, 1]})
    assert kappa_analysis(frame).to_dict()["pairs"][0]["kappa"] is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"rater": [1], "item": [1]}), "missing column"),
        (pd.DataFrame({"rater": [1, 1], "item": [1, 1], "rating": [1, 2]}), "more than once"),
        (pd.DataFrame({"rater": [1, 1], "item": [1, 2], "rating": [1, 2]}), "two raters"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kappa_analysis(frame)


def test_unknown_weights_rejected() -> None:
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa_table(TABLE10, weights="cubic")  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=40))
def test_kappa_is_symmetric_in_the_raters(pairs: list[tuple[int, int]]) -> None:
    a, b = np.array(pairs).T
    _, ab = cohen_kappa(a, b, weights="linear")
    _, ba = cohen_kappa(b, a, weights="linear")
    assert ab.kappa == pytest.approx(ba.kappa, nan_ok=True)
    # When the variance is zero in exact arithmetic, rounding leaves +-1e-17 in either order, and
    # its square root (or the clip at zero) differs by about 1e-8: compare on that scale.
    assert ab.se == pytest.approx(ba.se, nan_ok=True, abs=1e-6)


def test_long_frame_agreement_covers_pairs_truth_and_ai_per_arm() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for arm in ("unassisted", "assisted"):
        for reader in ("r1", "r2", "r3"):
            for case in range(20):
                truth = case % 2
                rows.append(
                    {"reader": reader, "case": case, "arm": arm, "finding": "nodule",
                     "truth": truth, "call": int(rng.random() < 0.3 + 0.4 * truth),
                     "ai_probability": 0.2 + 0.6 * truth}
                )  # fmt: skip
    out = long_frame_agreement(pd.DataFrame(rows), ai_threshold={"nodule": 0.5})
    kinds = {(r.arm, r.comparison) for r in out}
    assert ("assisted", "reader-reader") in kinds and ("unassisted", "fleiss") in kinds
    truth_rows = [r for r in out if r.comparison == "reader-truth"]
    ai_rows = [r for r in out if r.comparison == "reader-ai"]
    assert len(truth_rows) == 6
    # the AI's calls equal the truth here, so reader-vs-AI equals reader-vs-truth
    assert [r.estimate.kappa for r in truth_rows] == [r.estimate.kappa for r in ai_rows]


def _write_diagnoses(path: Path) -> None:
    lines = ["rater,item,rating"]
    lines += [f"r{j + 1},{i + 1},{DIAGNOSES[i, j]}" for i in range(30) for j in range(6)]
    path.write_text("\n".join(lines) + "\n")


def test_cli_kappa_json_follows_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from analysis.cli import main

    path = tmp_path / "k.csv"
    _write_diagnoses(path)
    assert main(["kappa", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"n_items", "n_raters", "weights", "categories", "fleiss", "pairs"}
    assert out["weights"] == "none" and out["n_raters"] == 6
    assert out["fleiss"]["kappa"] == pytest.approx(0.4302445, abs=1e-7)
    assert set(out["pairs"][0]) == {
        "rater_a", "rater_b", "n", "percent_agreement", "kappa", "se", "ci_lower", "ci_upper"
    }  # fmt: skip
    assert main(["kappa", str(path), "--weights", "quadratic"]) == 0
    assert "Fleiss' kappa" in capsys.readouterr().out


def test_cli_kappa_bad_input_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.cli import main

    path = tmp_path / "bad.csv"
    path.write_text("rater,item\n1,2\n")
    assert main(["kappa", str(path)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing column" in err
    path.write_text("rater,item,rating\na,1,x\nb,1,y\n")
    assert main(["kappa", str(path), "--weights", "linear"]) != 0
    assert "numeric" in capsys.readouterr().err


def test_cli_kappa_intervals_stay_within_minus_one_and_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from analysis.cli import main

    a = [0] * 21 + [1] * 2
    b = [0] * 20 + [1] * 3
    lines = ["rater,item,rating"]
    lines += [
        f"{rater},{i},{r}" for rater, calls in (("a", a), ("b", b)) for i, r in enumerate(calls)
    ]
    path = tmp_path / "k.csv"
    path.write_text("\n".join(lines) + "\n")
    assert main(["kappa", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pair = out["pairs"][0]
    assert pair["kappa"] + 1.959963984540054 * pair["se"] > 1.0
    assert pair["ci_upper"] == 1.0
    for est in (pair, out["fleiss"]):
        assert -1.0 <= est["ci_lower"] <= est["kappa"] <= est["ci_upper"] <= 1.0


def test_long_frame_agreement_fleiss_row_uses_the_jackknife_se() -> None:
    rng = np.random.default_rng(4)
    rows = []
    calls = rng.random((3, 30)) < 0.4
    for j in range(3):
        for k in range(30):
            rows.append(
                {"reader": f"r{j}", "case": k, "arm": "assisted", "finding": "nodule",
                 "truth": 0, "call": int(calls[j, k] or calls[0, k]), "ai_probability": np.nan}
            )  # fmt: skip
    out = long_frame_agreement(pd.DataFrame(rows))
    fl = next(r for r in out if r.comparison == "fleiss")
    wide = np.array([[row["call"] for row in rows if row["reader"] == f"r{j}"] for j in range(3)])
    table, _ = sm.aggregate_raters(wide.T)
    assert fl.estimate.se == pytest.approx(_jackknife_by_deletion(table), rel=1e-10)
