"""Bootstrap covariance of the OR analysis against RJafroc 2.1.3.

Golden values: ``tests/data/bootstrap_golden.json``, written by ``tests/data/bootstrap_golden.R``
(RJafroc 2.1.3, commit 44b0e39e, R 4.2): RJafroc's bootstrap of the Wilcoxon figure of merit
(``EstimateVarCov`` in ``R/StOldCode.R``, 200 replicates, ``set.seed(20261203)``, with the
two defects that stop it corrected, see :mod:`analysis.mrmc.bootstrap`) and the cases each
replicate drew. Fed those replicates, the bootstrap here must give RJafroc's covariance
components.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.io import MRMCDesign, mrmc_design, read_mrmc_csv
from analysis.mrmc import or_analysis
from analysis.mrmc.bootstrap import (
    auc_replicates,
    bootstrap_covariance,
    bootstrap_indices,
    bootstrap_metric_and_covariance,
    design_replicates,
    metric_replicates,
)
from analysis.mrmc.covariance import metric_and_covariance
from analysis.mrmc.obuchowski_rockette import _covariance_means
from analysis.roc import empirical_auc

DATA = Path("tests/data")
GOLDEN = json.loads((DATA / "bootstrap_golden.json").read_text())
REL = 1e-6


def drawn_indices(design, expected) -> np.ndarray:
    """RJafroc's replicates as indices into the design's cases: positives, then negatives."""
    position = {case: k for k, case in enumerate(design.cases)}
    cases = np.hstack([expected["positive_cases"], expected["negative_cases"]])
    return np.array([[position[str(case)] for case in row] for row in cases], dtype=np.intp)


@pytest.mark.parametrize("name", ["vandyke", "franken"])
def test_bootstrap_on_rjafroc_replicates_gives_its_covariance_components(name):
    expected = GOLDEN["datasets"][name]
    design = mrmc_design(read_mrmc_csv(DATA / expected["data"]))
    indices = drawn_indices(design, expected)
    assert indices.shape == (200, design.truth.size)
    covariance = bootstrap_covariance(design, indices, auc_replicates)
    t, r, _ = design.ratings.shape
    components = _covariance_means(covariance, t, r)
    reference = [expected[key] for key in ("var_error", "cov1", "cov2", "cov3")]
    assert components == pytest.approx(reference, rel=REL)
    values, _ = bootstrap_metric_and_covariance(design, "empirical_auc", indices=indices)
    assert values == pytest.approx(np.array(expected["fom"]), rel=REL)


def test_rjafroc_bootstrap_errors_are_recorded():
    assert GOLDEN["utilorvarcomp_bootstrap_error"] == "code needs fixing: SmpldFom2ORCov bootstrap"
    assert "flag" in GOLDEN["stoldcode_bootstrap_error"]


@pytest.mark.parametrize(
    ("data", "metric"),
    [
        ("vandyke.csv", "empirical_auc"),
        ("mrmc_designs/vandyke_missing.csv", "empirical_auc"),
        ("mrmc_designs/vandyke_case2.csv", "empirical_auc"),
        ("mrmc_designs/vandyke_case3.csv", "empirical_auc"),
        ("mrmc_designs/vandyke_call3.csv", "sensitivity"),
        ("mrmc_designs/vandyke_splitplot_call3.csv", "specificity"),
    ],
)
def test_vectorised_replicates_equal_scoring_each_resampled_design(data, metric):
    design = mrmc_design(read_mrmc_csv(DATA / data))
    indices = bootstrap_indices(design.truth, 30, seed=7)

    def values_of(resampled):
        return metric_and_covariance(resampled, metric, "jackknife")[0]

    fast = metric_replicates(metric)(design, indices)
    slow = design_replicates(values_of)(design, indices)
    assert fast == pytest.approx(slow, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    ratings=st.lists(st.integers(1, 5), min_size=6, max_size=24),
    seed=st.integers(0, 2**32 - 1),
)
def test_replicate_auc_from_counts_is_the_auc_of_the_resampled_ratings(ratings, seed):
    # Ties (five rating levels) and repeated cases are where a counts-based AUC can go wrong.
    values = np.array(ratings, dtype=np.float64)
    truth = np.arange(values.size) % 2 == 0
    design = MRMCDesign(
        ratings=values.reshape(1, 1, -1),
        truth=truth,
        treatments=("1",),
        readers=("1",),
        cases=tuple(str(k) for k in range(values.size)),
        observed=np.ones((1, 1, values.size), dtype=bool),
        design="factorial",
    )
    indices = bootstrap_indices(truth, 5, seed=seed)
    expected = [empirical_auc(values[row][truth[row]], values[row][~truth[row]]) for row in indices]
    assert auc_replicates(design, indices)[:, 0] == pytest.approx(expected, rel=1e-12)


def test_replicates_keep_the_class_sizes_and_resample_only_the_metric_class():
    truth = np.array([True] * 4 + [False] * 6)
    both = bootstrap_indices(truth, 50, seed=1)
    assert truth[both[:, :4]].all() and not truth[both[:, 4:]].any()
    positives_only = bootstrap_indices(truth, 50, seed=1, negatives=False)
    assert (positives_only[:, 4:] == np.arange(4, 10)).all()
    assert len({tuple(row) for row in positives_only[:, :4]}) > 1


def test_same_seed_same_result_and_another_seed_another():
    frame = read_mrmc_csv(DATA / "vandyke.csv")
    first = or_analysis(frame, cov="bootstrap", n_boot=200, seed=3)
    again = or_analysis(frame, cov="bootstrap", n_boot=200, seed=3)
    other = or_analysis(frame, cov="bootstrap", n_boot=200, seed=4)
    assert first.var_components == again.var_components
    assert first.var_components != other.var_components
    assert first.to_dict()["bootstrap"] == {"n_boot": 200, "seed": 3}


@pytest.mark.parametrize(
    ("data", "metric"),
    [
        ("vandyke.csv", "empirical_auc"),
        ("franken.csv", "empirical_auc"),
        ("mrmc_designs/vandyke_call3.csv", "sensitivity"),
        ("mrmc_designs/vandyke_call3.csv", "specificity"),
    ],
)
def test_bootstrap_components_are_close_to_the_jackknife(data, metric):
    # Both estimate the same covariance. The bootstrap's is the plug-in one, smaller than the
    # jackknife's by about (n - 1) / n per resampled class (2-5% on these data: a proportion's
    # bootstrap variance is p (1 - p) / m, its jackknife variance p (1 - p) / (m - 1)); with
    # 20000 replicates the Monte Carlo error of a component is about 1-2%. 8% bounds both.
    design = mrmc_design(read_mrmc_csv(DATA / data))
    t, r, _ = design.ratings.shape
    _, boot = bootstrap_metric_and_covariance(design, metric, n_boot=20000, seed=11)
    _, jack = metric_and_covariance(design, metric, "jackknife")
    boot_components = np.array(_covariance_means(boot, t, r))
    jack_components = np.array(_covariance_means(jack, t, r))
    assert boot_components == pytest.approx(jack_components, rel=0.08)


def test_a_replicate_without_a_class_for_a_reader_is_a_clear_error():
    # Reader 1 read a single positive case: some replicates leave it without one.
    frame = read_mrmc_csv(DATA / "vandyke.csv")
    positives = sorted(frame.loc[frame.truth == 1, "case"].unique())
    drop = (frame.reader == frame.reader.iloc[0]) & frame.case.isin(positives[2:])
    design = mrmc_design(frame[~drop])
    with pytest.raises(ValueError, match="read no case of a truth class"):
        bootstrap_metric_and_covariance(design, "empirical_auc", n_boot=200)


def test_cli_bootstrap_json(capsys):
    status = main(
        ["mrmc", str(DATA / "vandyke.csv"), "--cov", "bootstrap", "--n-boot", "300", "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["cov"] == "bootstrap" and data["bootstrap"] == {"n_boot": 300, "seed": 0}
    assert data["var_components"]["var_error"] > 0


def test_cli_too_few_replicates_is_a_one_line_error(capsys):
    assert main(["mrmc", str(DATA / "vandyke.csv"), "--cov", "bootstrap", "--n-boot", "1"]) == 2
    assert "at least 2 replicates" in capsys.readouterr().err


def test_cli_bootstrap_options_without_the_bootstrap_are_refused(capsys):
    assert main(["mrmc", str(DATA / "vandyke.csv"), "--seed", "3"]) == 2
    assert "need --cov bootstrap" in capsys.readouterr().err
