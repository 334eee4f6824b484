"""Type I error and CI coverage of the iMRMC U-statistic analysis on designs with missing reads.

For each design and Roe-Metz variance structure, simulate ``--n-sims`` null datasets (the same
``mu`` in both treatments) with :func:`analysis.simulate.simulate_roe_metz`, remove reads to
make the design, run :func:`analysis.mrmc.imrmc_analysis` (alpha 0.05) and record

* the rejection rate of the difference test (p < 0.05) with a 95% Wilson interval, over the
  datasets whose U-statistic variance is positive (the others have no p-value, as in iMRMC);
* the coverage of the 95% CI of the difference (true value 0), over the same datasets;
* the share of datasets with a negative U-statistic variance of the difference;
* the rejection rate with the MLE variance (iMRMC's ``MLEstat`` table);
* the bias check of the variance estimators: the mean of the U-statistic and of the MLE
  variance of the difference over all datasets, each divided by the empirical variance of the
  estimated difference (1 for an unbiased estimator, up to simulation error);
* the coverage of the single-treatment 95% CIs of the population AUC
  ``analysis.simulate.population_auc(mu, structure)``.

Designs:

* ``split-plot``: readers in two groups, cases in two blocks (half of each truth class);
  group g reads block g in both treatments;
* ``missing``: fully crossed, then each read removed independently with probability 0.3.

Report what comes out; do not tune. Usage::

    nice -n 10 python benchmarks/validate_imrmc.py --n-sims 1000 [--json]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from validation import null_study, pooled_summary, print_report, wilson

from analysis.mrmc import imrmc_analysis
from analysis.simulate import population_auc, roe_metz_params

DESIGNS = ("split-plot", "missing")


@dataclass(frozen=True)
class Cell:
    design: str
    structure: str
    n_readers: int
    n_per_class: int
    mu: float
    n_sims: int
    n_defined: int
    type_i_error: float
    type_i_ci: tuple[float, float]
    diff_ci_coverage: float
    negative_variance_rate: float
    type_i_error_mle: float
    var_ratio_u: float
    var_ratio_mle: float
    single_ci_coverage: float
    median_df: float
    seconds: float


def apply_design(
    frame: pd.DataFrame, design: str, n_readers: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Remove the reads that the design does not make (see the module docstring)."""
    if design == "split-plot":
        # negatives come first, then positives: alternate cases give each block both classes
        block = frame["case"].to_numpy(dtype=np.int64) % 2
        group = (frame["reader"].to_numpy(dtype=np.int64) - 1) * 2 // n_readers
        keep: np.ndarray[tuple[int], np.dtype[np.bool_]] = block == group
        return frame.loc[keep]
    if design == "missing":
        return frame.loc[rng.random(len(frame)) >= 0.3]
    raise ValueError(f"unknown design {design!r}")


def run_cell(
    design: str, structure: str, n_readers: int, n_per_class: int, mu: float, n_sims: int,
    seed: int,
) -> Cell:  # fmt: skip
    rng = np.random.default_rng(seed)
    params = roe_metz_params(structure, mu)
    true_auc = population_auc(mu, params)
    reject = cover = defined = negative = reject_mle = cover_single = n_single = 0
    dfs: list[float] = []
    estimates: list[float] = []
    var_u: list[float] = []
    var_mle: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n_sims):
        full = null_study(params, mu, n_readers, n_per_class, rng)
        result = imrmc_analysis(apply_design(full, design, n_readers, rng))
        d = result.differences[0]
        estimates.append(d.estimate)
        var_u.append(d.variance)
        var_mle.append(result.mle_differences[0].variance)
        if d.p_value is None or d.ci_lower is None or d.ci_upper is None:
            negative += d.variance < 0
        else:
            defined += 1
            reject += d.p_value < 0.05
            cover += d.ci_lower <= 0.0 <= d.ci_upper
            dfs.append(d.df if d.df is not None else float("nan"))
        mle = result.mle_differences[0]
        reject_mle += mle.p_value is not None and mle.p_value < 0.05
        for s in result.single_treatment.values():
            if s.ci_lower is not None and s.ci_upper is not None:
                n_single += 1
                cover_single += s.ci_lower <= true_auc <= s.ci_upper
    empirical = float(np.mean(np.square(estimates)))  # the true difference is 0
    return Cell(
        design=design,
        structure=structure,
        n_readers=n_readers,
        n_per_class=n_per_class,
        mu=mu,
        n_sims=n_sims,
        n_defined=defined,
        type_i_error=reject / max(defined, 1),
        type_i_ci=wilson(reject, max(defined, 1)),
        diff_ci_coverage=cover / max(defined, 1),
        negative_variance_rate=negative / n_sims,
        type_i_error_mle=reject_mle / n_sims,
        var_ratio_u=float(np.mean(var_u)) / empirical,
        var_ratio_mle=float(np.mean(var_mle)) / empirical,
        single_ci_coverage=cover_single / max(n_single, 1),
        median_df=float(np.nanmedian(dfs)) if dfs else float("nan"),
        seconds=time.perf_counter() - t0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=1000)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--structures", default="HH,LH")
    parser.add_argument("--readers", default="6,10")
    parser.add_argument("--cases-per-class", default="50")
    parser.add_argument("--mu", default="0.75,1.5", help="Roe-Metz levels to run")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cells = []
    seed = args.seed
    grid = itertools.product(
        args.designs.split(","),
        (float(x) for x in args.mu.split(",")),
        args.structures.split(","),
        (int(x) for x in args.readers.split(",")),
        (int(x) for x in args.cases_per_class.split(",")),
    )
    for design, mu, structure, n_r, n_c in grid:
        cells.append(run_cell(design, structure, n_r, n_c, mu, args.n_sims, seed))
        seed += 1
        if not args.json:
            c = cells[-1]
            print(
                f"{c.design:<10} {c.structure} mu={c.mu:4.2f} readers={c.n_readers:3d} "
                f"cases={2 * c.n_per_class:4d} typeI={c.type_i_error:.4f} "
                f"({c.type_i_ci[0]:.4f}, {c.type_i_ci[1]:.4f}) diffCI={c.diff_ci_coverage:.4f} "
                f"negVar={c.negative_variance_rate:.4f} typeI_MLE={c.type_i_error_mle:.4f} "
                f"varU/emp={c.var_ratio_u:.3f} varMLE/emp={c.var_ratio_mle:.3f} "
                f"singleCI={c.single_ci_coverage:.4f} df={c.median_df:6.1f} "
                f"[{c.seconds:.1f} s]",
                flush=True,
            )
    # the rates are over the datasets with a defined test
    summary = pooled_summary(cells, "n_defined", "type_i_error", "diff_ci_coverage")
    print_report(cells, summary, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
