"""iMRMC U-statistic analysis against iMRMC 2.1.2 ``doIMRMC`` (pure R engine).

Reference values: ``tests/data/imrmc_golden.json``, written by ``Rscript
tests/data/imrmc_golden.R`` (R 4.2.2, iMRMC 2.1.2; the call is
``doIMRMC(to_imrmc(read_long(FILE)))`` on each input CSV, its ``Ustat`` and ``MLEstat`` tables
and ``perReader`` AUCs). Tolerance: 1e-6 relative. The moment sums are also checked against a
direct translation of iMRMC's ``doAUC`` loops (success matrices per reader pair) on random
designs with ties and missing reads.
"""

import json
import math
import re
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.io import read_mrmc_csv
from analysis.mrmc import IMRMCResult, imrmc_analysis, or_analysis
from analysis.mrmc.imrmc import _layout
from analysis.mrmc.imrmc_moments import moments

DATA = "tests/data"
REL = 1e-6
GOLDEN = json.loads(Path(f"{DATA}/imrmc_golden.json").read_text(encoding="utf-8"))
DATASETS = sorted(GOLDEN["datasets"])


def _close(mine, reference, rel=REL):
    if reference is None:
        return mine is None
    return mine == pytest.approx(reference, rel=rel, abs=1e-15)


@pytest.fixture(scope="module")
def results():
    return {
        name: imrmc_analysis(read_mrmc_csv(f"{DATA}/{GOLDEN['datasets'][name]['file']}"))
        for name in DATASETS
    }


def test_golden_records_the_r_and_package_versions():
    assert GOLDEN["imrmc_version"] == "2.1.2"
    assert GOLDEN["r_version"].startswith("R version 4.")
    assert set(DATASETS) == {
        "vandyke", "splitplot", "missing", "franken", "three", "nested_cases", "nested_readers"
    }  # fmt: skip


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("table", ["Ustat", "MLEstat"])
def test_single_treatment_matches_doimrmc(results, name, table):
    result: IMRMCResult = results[name]
    single = result.single_treatment if table == "Ustat" else result.mle_single_treatment
    for ref in GOLDEN["datasets"][name][table]["single"]:
        mine = single[ref["treatment"]]
        assert result.treatment_value[ref["treatment"]] == pytest.approx(ref["estimate"], rel=REL)
        for key in ("estimate", "variance", "df", "ci_lower", "ci_upper"):
            assert _close(getattr(mine, key), ref[key]), (key, getattr(mine, key), ref[key])
        if ref["variance"] < 0:
            assert mine.se is None
        else:
            assert mine.se == pytest.approx(math.sqrt(ref["variance"]), rel=REL)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("table", ["Ustat", "MLEstat"])
def test_differences_match_doimrmc_with_pairs_in_order_of_first_appearance(results, name, table):
    result: IMRMCResult = results[name]
    mine = {d.pair: d for d in (result.differences if table == "Ustat" else result.mle_differences)}
    refs = GOLDEN["datasets"][name][table]["differences"]
    assert len(mine) == len(refs)
    for ref in refs:
        a, b = ref["pair"].split(" - ")
        # iMRMC names pairs in sorted modality order; here the first-appearing treatment leads.
        flipped = f"{b} - {a}" in mine
        d = mine[f"{b} - {a}"] if flipped else mine[ref["pair"]]
        sign = -1.0 if flipped else 1.0
        assert _close(d.estimate, sign * ref["estimate"])
        for key in ("variance", "df", "p_value"):
            assert _close(getattr(d, key), ref[key]), (key, getattr(d, key), ref[key])
        lower, upper = (ref["ci_lower"], ref["ci_upper"])
        if flipped and lower is not None:
            lower, upper = -upper, -lower
        assert _close(d.ci_lower, lower) and _close(d.ci_upper, upper)


@pytest.mark.parametrize("name", DATASETS)
def test_reader_aucs_match_doimrmc_per_reader(results, name):
    mine = {(v.reader, v.treatment): v.value for v in results[name].reader_value}
    refs = GOLDEN["datasets"][name]["reader_auc"]
    assert len(mine) == len(refs)
    for ref in refs:
        assert mine[ref["reader"], ref["treatment"]] == pytest.approx(ref["auc"], rel=REL)


def test_three_treatments_are_named_in_order_of_first_appearance(results):
    assert list(results["three"].treatment_value) == ["3", "1", "2"]
    assert [d.pair for d in results["three"].differences] == ["3 - 1", "3 - 2", "1 - 2"]


def test_fully_crossed_aucs_equal_the_or_analysis_reader_means(results):
    reference = or_analysis(read_mrmc_csv(f"{DATA}/vandyke.csv")).treatment_value
    for name, value in results["vandyke"].treatment_value.items():
        assert value == pytest.approx(reference[name], rel=1e-12)


def test_negative_u_statistic_variance_gives_nulls_and_a_note(results):
    # Franken: iMRMC's Ustat variance of the difference is negative (-3.16e-05), all NA.
    result = results["franken"]
    d = result.differences[0]
    assert d.variance < 0
    assert (d.se, d.df, d.ci_lower, d.ci_upper, d.p_value) == (None, None, None, None, None)
    assert result.mle_differences[0].p_value is not None
    data = result.to_dict()
    assert data["differences"][0]["se"] is None
    assert len(data["notes"]) == 1 and "difference 1 - 2 is negative" in data["notes"][0]


def test_negative_single_treatment_variance_gives_nulls_and_a_note(results):
    # imrmc_three.csv: iMRMC's Ustat variance of treatment 2 is negative, its CI NA.
    single = results["three"].single_treatment["2"]
    assert single.variance < 0
    assert (single.se, single.df, single.ci_lower, single.ci_upper) == (None,) * 4
    assert results["three"].notes == (
        "the U-statistic variance of treatment 2 is negative (-0.000556): its SE, df and "
        "interval are null, as in iMRMC; its MLE variance is -0.000168",
    )


def test_json_has_exactly_the_contract_keys(results):
    data = results["splitplot"].to_dict()
    assert list(data) == ["n_readers", "n_cases", "treatment_value", "single_treatment",
                          "differences"]  # fmt: skip
    assert (data["n_readers"], data["n_cases"]) == (5, 114)
    assert list(data["single_treatment"]["1"]) == [
        "estimate", "variance", "se", "df", "ci_lower", "ci_upper"
    ]  # fmt: skip
    assert list(data["differences"][0]) == [
        "pair", "estimate", "variance", "se", "df", "ci_lower", "ci_upper", "p_value"
    ]  # fmt: skip


def test_alpha_changes_the_interval_as_a_t_on_floor_df(results):
    frame = read_mrmc_csv(f"{DATA}/imrmc_splitplot.csv")
    wide = imrmc_analysis(frame, alpha=0.01).differences[0]
    base = results["splitplot"].differences[0]
    assert base.df is not None and base.se is not None and wide.ci_upper is not None
    from scipy import stats

    half = stats.t.ppf(0.995, math.floor(base.df)) * base.se
    assert wide.ci_upper == pytest.approx(base.estimate + half, rel=1e-12)
    assert wide.p_value == base.p_value


def test_df_above_50_uses_the_normal_distribution():
    # MLE difference df of Franken is 296: iMRMC's hypothesisTest_t switches to the normal.
    from scipy import stats

    d = imrmc_analysis(read_mrmc_csv(f"{DATA}/franken.csv")).mle_differences[0]
    assert d.df is not None and d.df > 50 and d.se is not None and d.p_value is not None
    assert d.p_value == pytest.approx(2 * stats.norm.sf(abs(d.estimate) / d.se), rel=1e-12)


# -- the vectorised moments against iMRMC's loops ----------------------------------------------


def _doauc_sums(x1, x2, truth):
    """iMRMC doAUC for one reader pair: numerators and denominators of the biased moments."""
    neg, pos = ~truth, truth

    def success(x):
        diff = x[pos][None, :] - x[neg][:, None]  # NaN where either case was not read
        s = np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
        return np.where(np.isnan(diff), np.nan, s)

    s1, s2 = success(x1), success(x2)
    d1, d2 = (~np.isnan(s1)).astype(float), (~np.isnan(s2)).astype(float)
    s1, s2 = np.nan_to_num(s1), np.nan_to_num(s2)

    def sums(a, b):
        return np.array(
            [
                np.sum(a * b),
                np.sum(a.sum(0) * b.sum(0)),
                np.sum(a.sum(1) * b.sum(1)),
                a.sum() * b.sum(),
            ]
        )

    return sums(s1, s2), sums(d1, d2)


@st.composite
def _designs(draw):
    n_t = draw(st.integers(1, 3))
    n_r = draw(st.integers(1, 4))
    n_c = draw(st.integers(4, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    truth = np.zeros(n_c, dtype=int)
    truth[rng.permutation(n_c)[: draw(st.integers(2, n_c - 2))]] = 1
    rows = []
    for r in range(n_r):
        # every reader reads one case of each class in each treatment it reads (reader 0 every
        # case in the first and all treatments); the other reads happen with probability 0.7
        keep_neg = rng.choice(np.flatnonzero(truth == 0))
        keep_pos = rng.choice(np.flatnonzero(truth == 1))
        for t in range(n_t):
            if r > 0 and t > 0 and rng.random() < 0.3:
                continue  # this reader does not read this treatment at all
            for c in range(n_c):
                kept = c in (keep_neg, keep_pos) or (r == 0 and t == 0)
                if kept or rng.random() < 0.7:
                    rating = int(rng.integers(1, 5)) + truth[c] * int(rng.integers(0, 2))
                    rows.append((f"r{r}", f"t{t}", f"c{c}", truth[c], float(rating)))
    return pd.DataFrame(rows, columns=["reader", "treatment", "case", "truth", "rating"])


@settings(max_examples=60, deadline=None)
@given(_designs())
def test_vectorised_moments_equal_imrmc_reader_pair_loops(frame):
    layout, _ = _layout(frame)
    result = moments(layout.neg, layout.pos)
    n_t, n_r, _ = layout.neg.shape
    x = np.concatenate([layout.neg, layout.pos], axis=2)
    truth = np.r_[np.zeros(layout.neg.shape[2], bool), np.ones(layout.pos.shape[2], bool)]
    for t, u in [(t, t) for t in range(n_t)] + list(combinations(range(n_t), 2)):
        numer, denom = np.zeros(8), np.zeros(8)
        for r in range(n_r):
            for s in range(n_r):
                n, d = _doauc_sums(x[t, r], x[u, s], truth)
                numer[4:] += n
                denom[4:] += d
                if r == s:
                    numer[:4] += n
                    denom[:4] += d
        np.testing.assert_allclose(result.numer[t, u], numer, rtol=1e-12)
        np.testing.assert_allclose(result.denom[t, u], denom, rtol=1e-12)


def test_results_do_not_depend_on_row_order_or_a_monotone_rescaling():
    frame = read_mrmc_csv(f"{DATA}/imrmc_three.csv")
    base = imrmc_analysis(frame)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    other = imrmc_analysis(shuffled.assign(rating=np.exp(shuffled["rating"]) * 7.0))
    for name, single in base.single_treatment.items():
        for key, value in asdict(single).items():
            assert _close(getattr(other.single_treatment[name], key), value, rel=1e-12)
    flipped = {tuple(d.pair.split(" - ")): d for d in other.differences}
    for d in base.differences:
        a, b = d.pair.split(" - ")
        mine = flipped[a, b] if (a, b) in flipped else flipped[b, a]
        sign = 1.0 if (a, b) in flipped else -1.0
        assert mine.estimate == pytest.approx(sign * d.estimate, rel=1e-12)
        for key in ("variance", "df", "p_value"):
            assert _close(getattr(mine, key), getattr(d, key), rel=1e-12)


# -- degenerate data and errors ------------------------------------------------------------------


def test_reader_with_one_class_in_a_treatment_is_noted():
    frame = read_mrmc_csv(f"{DATA}/vandyke.csv")
    drop = (frame["reader"] == "3") & (frame["treatment"] == "2") & (frame["truth"] == 1)
    result = imrmc_analysis(frame[~drop])
    assert any("reader 3 read no positive case under treatment 2" in n for n in result.notes)
    assert ("3", "2") not in {(v.reader, v.treatment) for v in result.reader_value}


def test_zero_variance_difference_is_noted_without_interval():
    frame = read_mrmc_csv(f"{DATA}/franken.csv")
    same = frame[frame["treatment"] == "1"]
    result = imrmc_analysis(pd.concat([same, same.assign(treatment="copy")]))
    d = result.differences[0]
    assert (d.estimate, d.variance) == (0.0, pytest.approx(0.0, abs=1e-15))
    assert d.df is None and d.p_value is None
    assert result.notes == (
        "the variance of difference 1 - copy is zero: its df, interval and p-value are undefined "
        "(null)",
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f[f["truth"] == 1].iloc[:0], "no data rows"),
        (
            lambda f: f[(f["reader"].isin(["1", "2"]) & (f["case"].astype(int) <= 57))
                        | (~f["reader"].isin(["1", "2"]) & (f["case"].astype(int) > 57))],
            "reader 1 has no positive (truth=1) cases",
        ),
        (lambda f: f[(f["truth"] == 0) | (f["case"] == "70")],
         "need at least 2 positive and 2 negative cases, got 1 positive"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), "reader 1 rated case 1 more than once"),
        (lambda f: f.assign(truth=np.where(f.index == 0, 1, f["truth"])),
         "case 1 has both truth 0 and truth 1"),
        (lambda f: f.assign(treatment=pd.Categorical(f["treatment"], ["1", "2", "3"])),
         "treatment 3 has no reads"),
    ],
)  # fmt: skip
def test_bad_input_raises_a_value_error_naming_it(edit, message):
    frame = read_mrmc_csv(f"{DATA}/vandyke.csv")
    with pytest.raises(ValueError, match=re.escape(message)):
        imrmc_analysis(edit(frame))


def test_treatment_without_a_reader_of_both_classes_is_an_error():
    frame = read_mrmc_csv(f"{DATA}/vandyke.csv")
    odd = frame[~((frame["treatment"] == "2") & (frame["truth"] == 1))]
    with pytest.raises(ValueError, match="treatment 2 has no reads of both"):
        imrmc_analysis(odd)


def test_alpha_outside_zero_one_is_an_error():
    with pytest.raises(ValueError, match="alpha"):
        imrmc_analysis(read_mrmc_csv(f"{DATA}/vandyke.csv"), alpha=1.0)


# -- command line --------------------------------------------------------------------------------


def test_cli_json_is_the_analysis_dict(capsys):
    assert main(["imrmc", f"{DATA}/imrmc_missing.csv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = imrmc_analysis(read_mrmc_csv(f"{DATA}/imrmc_missing.csv")).to_dict()
    assert data == expected


def test_cli_table_says_how_df_and_intervals_are_computed(capsys):
    assert main(["imrmc", f"{DATA}/imrmc_splitplot.csv"]) == 0
    out = capsys.readouterr().out
    assert "floor(df)" in out and "normal when df > 50" in out and "U-statistic" in out
    assert "1 - 2" in out


@pytest.mark.parametrize("path", [DATA, f"{DATA}/no_such.csv"])
def test_cli_unreadable_input_is_one_line_and_exit_2(capsys, path):
    assert main(["imrmc", path, "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m analysis imrmc: error:")


def test_cli_reader_with_one_class_is_exit_2(capsys, tmp_path):
    frame = read_mrmc_csv(f"{DATA}/vandyke.csv")
    frame[~((frame["reader"] == "4") & (frame["truth"] == 0))].to_csv(
        tmp_path / "one_class.csv", index=False
    )
    assert main(["imrmc", str(tmp_path / "one_class.csv")]) == 2
    assert "reader 4 has no negative (truth=0) cases" in capsys.readouterr().err
