"""Coverage of the 95% interval of the reading-time ratio (analysis.readtime.reading_time).

Each dataset is a crossover (DESIGN.md): every reader reads every case in both arms, half of the
cases (per reader, at random) assisted in session 1 and unassisted in session 2, the other half
the reverse. Log reading time::

    log t = log 60 + u_j + c_k + (log R + a_j) [assisted] + s [session 2] + e,
    u_j ~ N(0, 0.25^2), c_k ~ N(0, sd_case^2), a_j ~ N(0, sd_slope^2), e ~ N(0, 0.3^2),

with the true ratio ``R = 0.8`` of geometric-mean times for a typical reader. Scenarios:

* ``reader-slope``: readers differ in how much the AI speeds them up (``sd_slope = 0.2``);
* ``case``: cases differ in how long they take (``sd_case = 0.5``);
* ``both``: both, and a session effect ``s = 0.05``;
* ``none``: neither (the slope and case variances sit on the boundary, zero).

For each cell the script records how often the 95% interval holds ``R`` (Wilson interval of that
rate), the median Satterthwaite df and the number of fits with a ``model_error``. Report what
comes out; do not tune. Usage::

    nice -n 10 python benchmarks/validate_readtime.py --n-sims 1000 [--json]
    python benchmarks/validate_readtime.py --speed   # one fit on 500,000 reads
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from validation import wilson

from analysis.readtime import reading_time

TRUE_RATIO = 0.8
SCENARIOS: dict[str, tuple[float, float, float]] = {
    # name: (sd_slope, sd_case, session effect)
    "reader-slope": (0.2, 0.0, 0.0),
    "case": (0.0, 0.5, 0.0),
    "both": (0.2, 0.5, 0.05),
    "none": (0.0, 0.0, 0.0),
}


@dataclass(frozen=True)
class Cell:
    scenario: str
    n_readers: int
    n_cases: int
    n_sims: int
    coverage: float
    coverage_ci: tuple[float, float]
    median_df: float
    model_errors: int
    seconds: float


def simulate_reads(
    rng: np.random.Generator, n_readers: int, n_cases: int, scenario: str
) -> pd.DataFrame:
    """One crossover dataset, one row per read."""
    sd_slope, sd_case, session_effect = SCENARIOS[scenario]
    reader = np.repeat(np.arange(n_readers), n_cases * 2)
    case = np.tile(np.repeat(np.arange(n_cases), 2), n_readers)
    arm = np.tile([0, 1], n_readers * n_cases)
    first_assisted = np.repeat(rng.random(n_readers * n_cases) < 0.5, 2)
    session = np.where((arm == 1) == first_assisted, 1, 2)
    log_t = (
        math.log(60.0)
        + rng.normal(0.0, 0.25, n_readers)[reader]
        + rng.normal(0.0, sd_case, n_cases)[case]
        + (math.log(TRUE_RATIO) + rng.normal(0.0, sd_slope, n_readers)[reader]) * arm
        + session_effect * (session == 2)
        + rng.normal(0.0, 0.3, reader.size)
    )
    return pd.DataFrame(
        {
            "reader": reader,
            "case": case,
            "arm": np.array(["unassisted", "assisted"])[arm],
            "session": session,
            "duration_s": np.exp(log_t),
        }
    )


def run_cell(scenario: str, n_readers: int, n_cases: int, n_sims: int, seed: int) -> Cell:
    rng = np.random.default_rng(seed)
    covered = errors = 0
    dfs: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n_sims):
        res = reading_time(simulate_reads(rng, n_readers, n_cases, scenario))
        if res.model_error:
            errors += 1
            continue
        covered += res.ci_lower <= TRUE_RATIO <= res.ci_upper
        dfs.append(res.df)
    fitted = n_sims - errors
    return Cell(
        scenario=scenario,
        n_readers=n_readers,
        n_cases=n_cases,
        n_sims=n_sims,
        coverage=covered / fitted,
        coverage_ci=wilson(covered, fitted),
        median_df=float(np.median(dfs)),
        model_errors=errors,
        seconds=time.perf_counter() - t0,
    )


def speed(n_readers: int, n_cases: int, n_findings: int, seed: int) -> dict[str, float]:
    """Wall time and peak traced memory of one fit on a large long frame (finding rows repeated)."""
    rng = np.random.default_rng(seed)
    reads = simulate_reads(rng, n_readers, n_cases, "both")
    reads["reader"] = np.array([f"reader-{j}" for j in range(n_readers)])[reads["reader"]]
    reads["case"] = np.array([f"case-{k:05d}" for k in range(n_cases)])[reads["case"]]
    long = pd.concat([reads.assign(finding=f"finding-{i}") for i in range(n_findings)])
    t0 = time.perf_counter()
    res = reading_time(long)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    reading_time(long)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "reads": float(len(reads)),
        "long_rows": float(len(long)),
        "seconds": seconds,
        "peak_mib": peak / 2**20,
        "ratio": res.ratio,
        "df": res.df,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n-sims", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--speed", action="store_true", help="time one fit of 50 readers x 5000 cases x 2 arms"
    )
    args = parser.parse_args()
    if args.speed:
        print(json.dumps(speed(50, 5000, 2, args.seed), indent=1))
        return
    cells = []
    designs = [(5, 50), (10, 50)]
    for i, (scenario, (readers, cases)) in enumerate((s, d) for s in SCENARIOS for d in designs):
        cell = run_cell(scenario, readers, cases, args.n_sims, args.seed + i)
        cells.append(cell)
        if not args.json:
            print(
                f"{scenario:<12} readers={readers:>3} cases={cases:>4} "
                f"coverage={cell.coverage:.4f} ({cell.coverage_ci[0]:.4f}, "
                f"{cell.coverage_ci[1]:.4f}) df={cell.median_df:7.1f} "
                f"errors={cell.model_errors} [{cell.seconds:.1f} s]",
                flush=True,
            )
    if args.json:
        print(json.dumps([asdict(c) for c in cells], indent=1))


if __name__ == "__main__":
    main()
