"""Type I error and CI coverage of the OR RRRC test (jackknife covariance) on Roe-Metz nulls.

For each Roe-Metz variance structure and size, simulate ``--n-sims`` null datasets (the same
``mu`` in both treatments), run :func:`analysis.mrmc.or_analysis` (jackknife, RRRC, alpha 0.05)
and record

* the rejection rate of the global F test (nominal 0.05), with a 95% Wilson interval;
* the coverage of the 95% CI of the difference of the two treatments (true difference 0);
* the coverage of the 95% single-treatment CIs of the reader-averaged metric, whose true value
  is ``analysis.simulate.population_auc(mu, structure)`` for the AUC and
  ``Phi(mu / (2 sqrt(total variance)))`` for sensitivity and specificity of the call
  ``rating > mu / 2`` (the latent rating is normal with mean ``mu`` or 0 and the total
  variance, for a random reader and case).

``--designs`` deletes reads from each simulated fully crossed study: ``split-plot`` keeps each
reader's reads of the cases whose ID has the parity of the reader's ID (two reader groups, two
interleaved case blocks, both treatments); ``missing`` deletes each read independently with
probability ``--missing``. ``--metrics`` picks the empirical AUC or the sensitivity /
specificity of the binary call.

Report what comes out; do not tune. Usage::

    python benchmarks/validate_or_typeI.py --n-sims 2000 [--designs factorial,split-plot,missing]
        [--metrics empirical_auc,sensitivity,specificity] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import special
from validation import null_study, pooled_summary, print_report, wilson

from analysis.mrmc import or_analysis
from analysis.simulate import population_auc, roe_metz_params

if TYPE_CHECKING:
    import pandas as pd

    from analysis.mrmc.covariance import Metric


def delete_reads(
    frame: pd.DataFrame, design: str, missing: float, rng: np.random.Generator
) -> pd.DataFrame:
    """The reads a ``factorial``, ``split-plot`` or ``missing`` study keeps (module notes)."""
    if design == "factorial":
        return frame
    if design == "split-plot":
        keep = (frame["reader"] % 2).to_numpy() == (frame["case"] % 2).to_numpy()
    elif design == "missing":
        keep = rng.random(len(frame)) >= missing
    else:
        raise ValueError(f"unknown design {design!r}")
    return frame.iloc[np.flatnonzero(keep)]


@dataclass(frozen=True)
class Cell:
    design: str
    metric: str
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
    failed: int
    seconds: float


def run_cell(
    structure: str,
    n_readers: int,
    n_per_class: int,
    mu: float,
    n_sims: int,
    seed: int,
    design: str = "factorial",
    metric: Metric = "empirical_auc",
    missing: float = 0.1,
) -> Cell:
    rng = np.random.default_rng(seed)
    params = roe_metz_params(structure, mu)
    if metric == "empirical_auc":
        true_value = population_auc(mu, params)
    else:
        true_value = float(special.ndtr(mu / (2.0 * math.sqrt(params.total))))
    reject = cover_diff = cover_single = failed = 0
    df2: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n_sims):
        frame = null_study(params, mu, n_readers, n_per_class, rng)
        if metric != "empirical_auc":
            frame["rating"] = (frame["rating"] > mu / 2.0).astype(float)
        frame = delete_reads(frame, design, missing, rng)
        try:
            res = or_analysis(frame, metric=metric, cov="jackknife", factors="RRRC")
        except ValueError:  # too few cases of a class left to a reader: not analysable
            failed += 1
            continue
        reject += res.global_test.p_value < 0.05
        d = res.differences[0]
        cover_diff += d.ci_lower <= 0.0 <= d.ci_upper
        cover_single += sum(
            s.ci_lower <= true_value <= s.ci_upper for s in res.single_treatment.values()
        )
        df2.append(float("nan") if res.global_test.df2 is None else res.global_test.df2)
    done = n_sims - failed
    return Cell(
        design=design,
        metric=metric,
        structure=structure,
        n_readers=n_readers,
        n_per_class=n_per_class,
        mu=mu,
        n_sims=done,
        type_i_error=reject / done,
        type_i_ci=wilson(reject, done),
        diff_ci_coverage=cover_diff / done,
        single_ci_coverage=cover_single / (2 * done),
        median_df2=float(np.median(df2)),
        failed=failed,
        seconds=time.perf_counter() - t0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=2000)
    parser.add_argument("--structures", default="HH,HL,LH,LL")
    parser.add_argument("--readers", default="5,10")
    parser.add_argument("--cases-per-class", default="25,50")
    parser.add_argument("--mu", default="0.75,1.5,2.5", help="Roe-Metz levels to run")
    parser.add_argument("--designs", default="factorial", help="factorial,split-plot,missing")
    parser.add_argument(
        "--metrics", default="empirical_auc", help="empirical_auc,sensitivity,specificity"
    )
    parser.add_argument("--missing", type=float, default=0.1, help="share of reads deleted")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cells = []
    seed = args.seed
    for design, metric, mu, structure in itertools.product(
        args.designs.split(","),
        args.metrics.split(","),
        (float(x) for x in args.mu.split(",")),
        args.structures.split(","),
    ):
        for n_r in (int(x) for x in args.readers.split(",")):
            for n_c in (int(x) for x in args.cases_per_class.split(",")):
                cells.append(
                    run_cell(
                        structure, n_r, n_c, mu, args.n_sims, seed, design, metric, args.missing
                    )
                )
                seed += 1
                if not args.json:
                    c = cells[-1]
                    print(
                        f"{c.design} {c.metric} "
                        f"{c.structure} mu={c.mu:4.2f} readers={c.n_readers:3d} "
                        f"cases={2 * c.n_per_class:4d} "
                        f"typeI={c.type_i_error:.4f} ({c.type_i_ci[0]:.4f}, "
                        f"{c.type_i_ci[1]:.4f}) diffCI={c.diff_ci_coverage:.4f} "
                        f"singleCI={c.single_ci_coverage:.4f} df2={c.median_df2:6.1f} "
                        + (f"failed={c.failed} " if c.failed else "")
                        + f"[{c.seconds:.1f} s]",
                        flush=True,
                    )
    rates = ("type_i_error", "diff_ci_coverage", "single_ci_coverage")
    print_report(cells, pooled_summary(cells, "n_sims", *rates), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
