"""The binormal likelihood-ratio (PROPROC) AUC in the OR analysis against MRMCaov 0.3.0.

Golden values: ``tests/data/mrmcaov_metrics.json``, written by ``tests/data/mrmcaov_metrics.R``
(MRMCaov 0.3.0 ``binormalLR_auc`` with trust 0.1-8). The whole-area analyses of VanDyke and of
the simulated study with missing reads are compared by ``test_or_analysis_matches_mrmcaov`` and
``test_jackknife_covariance_matches_mrmcaov`` in ``test_mrmc_metrics.py`` at the PROPROC
tolerances set there; this module checks why those tolerances are what they are (MRMCaov's
optimizer stops short of the maximum this project reaches, so its log-likelihoods are never
above ours) and the partial areas, where MRMCaov's formula stops with an error: there the
partial areas are checked against numerical integration of this project's own fitted curves.
"""

import functools
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

from analysis.cli import main
from analysis.io import MRMCDesign, mrmc_design, read_mrmc_csv
from analysis.mrmc.bootstrap import (
    bootstrap_indices,
    case_counts,
    design_replicates,
    resample_design,
)
from analysis.mrmc.covariance import jackknife_covariance
from analysis.mrmc.metrics import (
    MetricSpec,
    jackknife_values,
    metric_values,
    replicate_values,
    spec_metric_and_covariance,
)
from analysis.partial import PartialArea
from analysis.proproc import ProprocFit, fit_proproc
from tests.analysis.test_mrmc_metrics import analysis_of, partial_of

DATA = Path("tests/data")
GOLDEN = json.loads((DATA / "mrmcaov_metrics.json").read_text())
FILES = {
    "vandyke": DATA / "vandyke.csv",
    "simulated_missing": DATA / "mrmc_designs" / "simulated_missing.csv",
}
FITS = GOLDEN["binormalLR_fits"]


@functools.cache
def ratings_of(name: str, treatment: str, reader: str) -> tuple[np.ndarray, np.ndarray]:
    frame = read_mrmc_csv(FILES[name])
    rows = frame[(frame.treatment == treatment) & (frame.reader == reader)]
    return (
        rows.rating[rows.truth == 0].to_numpy(np.float64),
        rows.rating[rows.truth == 1].to_numpy(np.float64),
    )


def integrated_area(fit: ProprocFit, partial: PartialArea) -> float:
    """The partial area under ``fit``'s curve by numerical integration of ``fit.tpf``.

    Over specificity ``[min, max]``: the integral of TPF over FPF in ``[1 - max, 1 - min]``.
    Over sensitivity ``[min, max]``: the integral of specificity ``1 - FPF(t)`` over TPF ``t``,
    by parts ``(max - min) - [t FPF(t)] + integral of TPF over FPF`` between the FPFs where
    the curve reaches ``min`` and ``max``.
    """

    def tpf(x: float) -> float:
        return float(fit.tpf(np.array([x]))[0])

    if partial.kind == "specificity":
        area = quad(tpf, 1.0 - partial.max, 1.0 - partial.min, epsabs=1e-13, epsrel=1e-11)[0]
    else:

        def fpf_at(t: float) -> float:
            if t >= tpf(1.0) - 1e-15:
                return 1.0
            return float(brentq(lambda x: tpf(x) - t, 0.0, 1.0, xtol=1e-15, rtol=1e-15))

        lo, hi = fpf_at(partial.min), fpf_at(partial.max)
        under = quad(tpf, lo, hi, epsabs=1e-13, epsrel=1e-11)[0]
        area = (partial.max - partial.min) - (partial.max * hi - partial.min * lo) + under
    return float(area / (partial.max - partial.min) if partial.normalize else area)


@pytest.mark.parametrize(
    "fit", FITS, ids=[f"{f['data']}-t{f['treatment']}-r{f['reader']}" for f in FITS]
)
def test_fitted_loglik_is_at_least_mrmcaovs_and_is_the_reported_auc(fit: dict[str, Any]) -> None:
    ours = our_fit(fit["data"], fit["treatment"], fit["reader"])
    if not fit["fitted"]:  # MRMCaov's rule for data without interior ROC points
        assert not ours.cutoffs
        assert ours.auc() == fit["auc"]
        return
    # MRMCaov's trust stops at a relative change of 1.5e-8 in the objective; this fit goes on
    # to the maximum, so it is never below (rounding of the log-likelihood allowed).
    assert ours.loglik >= fit["loglik"] - 1e-9, (ours.loglik, fit["loglik"])
    assert ours.auc() == pytest.approx(fit["auc"], abs=1e-5)


@pytest.mark.parametrize("name", sorted(FILES))
def test_analysis_reports_the_fit_of_each_reader(name: str) -> None:
    result = analysis_of(name, "binormalLR_auc")
    for v in result.reader_value:
        assert v.value == our_fit(name, v.treatment, v.reader).auc()


@functools.cache
def our_fit(name: str, treatment: str, reader: str) -> ProprocFit:
    return fit_proproc(*ratings_of(name, treatment, reader))


@functools.cache
def our_jackknife(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The case-deleted refits of the whole PROPROC AUC, once per data set for the whole run
    (tens of seconds of fitting); callers only read the arrays."""
    return jackknife_values(mrmc_design(read_mrmc_csv(FILES[name])), MetricSpec("binormalLR_auc"))


JACKKNIFE = {(j["data"], j["treatment"], j["reader"]): j for j in GOLDEN["binormalLR_jackknife"]}


def number(value: Any) -> float:
    """A JSON number of the golden file: R writes NA, Inf and -Inf as strings (NA: NaN)."""
    if isinstance(value, int | float):
        return float(value)
    return {"Inf": math.inf, "-Inf": -math.inf}.get(value, math.nan)


def their_jackknife(
    name: str, design: MRMCDesign, partial: PartialArea | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MRMCaov's leave-one-out AUCs ``(t r, K)`` (partial areas computed here from its ``d_a``
    and ``c``; NaN for a case not read), its log-likelihoods, and which cases each group read."""
    t, r, K = design.ratings.shape
    auc = np.full((t * r, K), np.nan)
    loglik = np.full((t * r, K), np.nan)
    for g in range(t * r):
        i, j = divmod(g, r)
        entry = JACKKNIFE[(name, design.treatments[i], design.readers[j])]
        for case, d_a, c, ll, value in zip(
            entry["case"], entry["d_a"], entry["c"], entry["loglik"], entry["auc"], strict=True
        ):
            k = design.cases.index(case)
            loglik[g, k] = number(ll)
            if partial is None:
                auc[g, k] = number(value)
            else:
                auc[g, k] = ProprocFit(number(d_a), number(c), True, "").auc(partial)
    return auc, loglik, design.observed.reshape(t * r, K)


@pytest.mark.parametrize("name", sorted(FILES))
def test_jackknife_fits_match_mrmcaovs(name: str) -> None:
    # Every case-deleted refit against MRMCaov's jackknife fit of the same sample (its
    # jackknife() fits each distinct deletion from its own starts; ours start from the fit to
    # all cases and from those starts). Observed: 4.4e-6, MRMCaov's trust stopping short.
    design = mrmc_design(read_mrmc_csv(FILES[name]))
    _, ours, _ = our_jackknife(name)
    theirs, _, read = their_jackknife(name, design)
    np.testing.assert_allclose(ours[read], theirs[read], rtol=0, atol=1e-5)


PARTIAL_KEY = "vandyke/binormalLR_auc/sensitivity-0.7-1-normalized/RRRC"


def test_partial_analysis_values_match_mrmcaov_and_its_fits_integrated() -> None:
    # MRMCaov's reader values of the partial area agree with ours (its curves at the full
    # data have |c| > 0.28, where its partial-area formula holds); its covariance does not:
    # on some jackknife samples its formula returns wrong areas (its cutoff search stops
    # short, see analysis/proproc). The partial areas of its own jackknife fits (d_a, c),
    # integrated correctly, give our covariance to the precision of its fits.
    expected = GOLDEN["analyses"][PARTIAL_KEY]
    partial = partial_of(expected)
    assert partial is not None
    design = mrmc_design(read_mrmc_csv(FILES["vandyke"]))
    spec = MetricSpec("binormalLR_auc", partial)
    values, covariance, _ = spec_metric_and_covariance(design, spec, "jackknife", n_boot=0, seed=0)
    for v in expected["reader_value"]:
        i, j = design.treatments.index(v["treatment"]), design.readers.index(v["reader"])
        assert values[i, j] == pytest.approx(v["value"], abs=1e-5)
    theirs, _, _ = their_jackknife("vandyke", design, partial)
    integrated = jackknife_covariance(theirs)
    scale = np.abs(integrated).max()
    np.testing.assert_allclose(covariance, integrated, rtol=2e-3, atol=5e-4 * scale)
    peer = np.asarray(expected["cov_matrix"], dtype=np.float64)
    assert np.abs(peer - integrated).max() > 0.5 * scale


PARTIALS = [
    PartialArea("specificity", 0.8, 1.0, normalize=True),
    PartialArea("sensitivity", 0.7, 1.0, normalize=True),
]


@pytest.mark.parametrize("partial", PARTIALS, ids=lambda p: p.label)
@pytest.mark.parametrize("name", sorted(FILES))
def test_partial_areas_equal_the_integral_of_the_fitted_curve(
    name: str, partial: PartialArea
) -> None:
    design = mrmc_design(read_mrmc_csv(FILES[name]))
    values = metric_values(design, MetricSpec("binormalLR_auc", partial))
    for (i, treatment), (j, reader) in itertools.product(
        enumerate(design.treatments), enumerate(design.readers)
    ):
        expected = integrated_area(our_fit(name, treatment, reader), partial)
        # Observed: 1e-13 (quad's own error is below 1e-11 here).
        assert values[i, j] == pytest.approx(expected, abs=1e-10), (treatment, reader)


def test_mrmcaovs_partial_area_errors_are_recorded() -> None:
    # MRMCaov 0.3.0's partial areas stop with an error for every VanDyke reader over
    # specificity up to 1 (c < 0 there); where it stops, only the integral is a reference.
    errors = {key: entry["error"] for key, entry in GOLDEN["binormalLR_partial"].items()}
    assert errors["vandyke-specificity-0.8-1"] == "non-finite value supplied by optim"
    for key, error in errors.items():
        name, kind, low, high = key.split("-")
        analysis = f"{name}/binormalLR_auc/{kind}-{low}-{high}-normalized/RRRC"
        assert (analysis in GOLDEN["analyses"]) == (error is None), key


def test_jackknife_refits_equal_recomputing_each_case_deleted_design() -> None:
    design = mrmc_design(read_mrmc_csv(FILES["simulated_missing"]))
    spec = MetricSpec("binormalLR_auc")
    values, loo, _ = our_jackknife("simulated_missing")
    np.testing.assert_allclose(values, metric_values(design, spec).ravel(), atol=1e-13)
    K = design.ratings.shape[2]
    for k in (0, 30, K - 1):
        kept = np.delete(np.arange(K), k)
        # Refits start from the full-data fit, recomputations from MRMCaov's starts: the same
        # maximum, to the precision of the stopping rule on flat ridges.
        np.testing.assert_allclose(
            loo[:, k], metric_values(resample_design(design, kept), spec).ravel(), atol=1e-6
        )


def test_bootstrap_replicates_equal_scoring_each_resampled_design() -> None:
    design = mrmc_design(read_mrmc_csv(FILES["vandyke"]))
    spec = MetricSpec("binormalLR_auc", PartialArea("sensitivity", 0.7, 1.0))
    indices = bootstrap_indices(design.truth, 3, seed=5)
    ours = replicate_values(design, spec, case_counts(indices, design.truth.size)).values
    scored = design_replicates(lambda d: metric_values(d, spec))(design, indices)
    np.testing.assert_allclose(ours, scored, atol=1e-5)


def test_cli_bootstrap_of_the_proproc_auc_runs_and_names_the_degenerate_fit(capsys) -> None:
    args = ["--metric", "binormalLR_auc", "--cov", "bootstrap", "--n-boot", "8", "--json"]
    assert main(["mrmc", str(FILES["vandyke"]), *args]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "binormalLR_auc"
    assert data["bootstrap"] == {"n_boot": 8, "seed": 0}
    assert 0.0 < data["var_components"]["var_error"] < 0.01
    assert any(
        note.startswith("reader 4, treatment 2: PROPROC fit: no interior ROC points")
        for note in data["notes"]
    )


def test_degenerate_reader_gets_mrmcaovs_auc_and_a_note() -> None:
    result = analysis_of("vandyke", "binormalLR_auc")
    values = {(v.treatment, v.reader): v.value for v in result.reader_value}
    assert values[("2", "4")] == 1.0
    assert result.notes == (
        "reader 4, treatment 2: PROPROC fit: no interior ROC points (the ratings separate the "
        "groups perfectly): AUC 1 by MRMCaov's rule",
    )


@pytest.mark.parametrize("cov", ["delong", "unbiased"])
def test_delong_and_unbiased_covariance_are_refused(cov: str, capsys) -> None:
    assert main(["mrmc", str(FILES["vandyke"]), "--metric", "binormalLR_auc", "--cov", cov]) == 2
    err = capsys.readouterr().err
    assert f"the {cov} covariance method needs metric empirical_auc" in err
    assert err.count("\n") == 1


def test_cli_text_names_the_partial_proproc_area(capsys) -> None:
    args = ["--metric", "binormalLR_auc", "--partial", "specificity", "--min", "0.8"]
    assert main(["mrmc", str(FILES["vandyke"]), *args, "--normalize"]) == 0
    out = capsys.readouterr().out
    assert "metric binormalLR_auc (partial AUC, specificity 0.8-1 (normalized))" in out
