"""Type I error and CI coverage of the OR RRRC test (jackknife covariance) on Roe-Metz nulls.

For each Roe-Metz variance structure and design, simulate ``--n-sims`` null datasets (the same
``mu`` in both treatments), run :func:`analysis.mrmc.or_analysis` (empirical AUC, jackknife,
RRRC, alpha 0.05) and record

* the rejection rate of the global F test (nominal 0.05), with a 95% Wilson interval;
* the coverage of the 95% CI of the difference of the two treatments (true difference 0);
* the coverage of the 95% single-treatment CIs of the reader-averaged AUC, whose true value is
  ``analysis.simulate.population_auc(mu, structure)``.

Report what comes out; do not tune. Usage::

    python benchmarks/validate_or_typeI.py --n-sims 2000 [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from statsmodels.stats.proportion import proportion_confint

from analysis.mrmc import or_analysis
from analysis.simulate import population_auc, roe_metz_params, simulate_roe_metz


@dataclass(frozen=True)
class Cell:
    structure: str
    n_readers: int
    n_per_class: int
    mu: float
    n_sims: int
    type_i_error: float
    type_i_ci: tuple[float, float]
    diff_ci_coverage: float
    single_ci_coverage: float
    median_df2: float
    seconds: float


def run_cell(
    structure: str, n_readers: int, n_per_class: int, mu: float, n_sims: int, seed: int
) -> Cell:
    rng = np.random.default_rng(seed)
    params = roe_metz_params(structure, mu)
    true_auc = population_auc(mu, params)
    reject = cover_diff = cover_single = 0
    df2: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n_sims):
        frame = simulate_roe_metz(
            n_readers=n_readers,
            n_positive=n_per_class,
            n_negative=n_per_class,
            mu=mu,
            structure=params,
            seed=rng,
        )
        res = or_analysis(frame, metric="empirical_auc", cov="jackknife", factors="RRRC")
        reject += res.global_test.p_value < 0.05
        d = res.differences[0]
        cover_diff += d.ci_lower <= 0.0 <= d.ci_upper
        cover_single += sum(
            s.ci_lower <= true_auc <= s.ci_upper for s in res.single_treatment.values()
        )
        df2.append(float("nan") if res.global_test.df2 is None else res.global_test.df2)
    lo, hi = proportion_confint(reject, n_sims, alpha=0.05, method="wilson")
    return Cell(
        structure,
        n_readers,
        n_per_class,
        mu,
        n_sims,
        reject / n_sims,
        (float(lo), float(hi)),
        cover_diff / n_sims,
        cover_single / (2 * n_sims),
        float(np.median(df2)),
        time.perf_counter() - t0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=2000)
    parser.add_argument("--structures", default="HH,HL,LH,LL")
    parser.add_argument("--readers", default="5,10")
    parser.add_argument("--cases-per-class", default="25,50")
    parser.add_argument("--mu", default="0.75,1.5,2.5", help="Roe-Metz levels to run")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cells = []
    seed = args.seed
    for mu, structure in itertools.product(
        (float(x) for x in args.mu.split(",")), args.structures.split(",")
    ):
        for n_r in (int(x) for x in args.readers.split(",")):
            for n_c in (int(x) for x in args.cases_per_class.split(",")):
                cells.append(run_cell(structure, n_r, n_c, mu, args.n_sims, seed))
                seed += 1
                if not args.json:
                    c = cells[-1]
                    print(
                        f"{c.structure} mu={c.mu:4.2f} readers={c.n_readers:3d} "
                        f"cases={2 * c.n_per_class:4d} "
                        f"typeI={c.type_i_error:.4f} ({c.type_i_ci[0]:.4f}, "
                        f"{c.type_i_ci[1]:.4f}) diffCI={c.diff_ci_coverage:.4f} "
                        f"singleCI={c.single_ci_coverage:.4f} df2={c.median_df2:6.1f} "
                        f"[{c.seconds:.1f} s]",
                        flush=True,
                    )
    total = sum(c.n_sims for c in cells)
    pooled = sum(c.type_i_error * c.n_sims for c in cells) / total
    summary = {
        "n_datasets": total,
        "pooled_type_i_error": pooled,
        "pooled_diff_ci_coverage": sum(c.diff_ci_coverage * c.n_sims for c in cells) / total,
        "pooled_single_ci_coverage": sum(c.single_ci_coverage * c.n_sims for c in cells) / total,
    }
    if args.json:
        print(json.dumps({"cells": [asdict(c) for c in cells], **summary}, indent=1))
    else:
        print(
            " ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
