"""Benchmark ``python -m analysis power`` against RJafroc 2.1.3 SsPowerGivenJK, SsSampleSizeKGivenJ.

On the Van Dyke pilot (tests/data/vandyke.csv = RJafroc ``dataset02``) and a simulated pilot
(``--large``, Roe-Metz HH, 10 readers x 500 cases by default), J = 10, effect 0.08, RRRC:

* ``power``: ``python -m analysis power PILOT --readers 10 --cases 114 --effect 0.08 --json`` as a
  whole process (best of ``--repeat``), and in process: the pilot's components
  (:func:`analysis.power.pilot_components`) plus :func:`analysis.power.power_given`;
* ``sample size``: the same with ``--target-power 0.8`` (:func:`analysis.power.cases_for_power`);
* ``grid``: the planning page's J x K grid (J = 2..30, K = 20..1000 in steps of 20) from the
  components, one vectorised call;
* RJafroc: ``SsPowerGivenJK(dataset, FOM = "Wilcoxon", J = 10, K = 114, effectSize = 0.08)`` and
  ``SsSampleSizeKGivenJ(dataset, FOM = "Wilcoxon", J = 10, effectSize = 0.08)``, each timed in
  R (median of ``--repeat`` calls, ``system.time`` elapsed) in one Rscript run started here, and
  the Rscript process as a whole (start-up and ``library(RJafroc)`` included).

The results are checked to be equal (power to 1e-6 relative, the same K) before they are timed.
Usage: ``.venv/bin/python benchmarks/bench_power.py [--repeat 5] [--rlib /work/r/lib-common]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.io import read_mrmc_csv  # noqa: E402
from analysis.power import (  # noqa: E402
    cases_for_power,
    pilot_components,
    power_arrays,
    power_given,
)
from analysis.simulate import simulate_roe_metz  # noqa: E402

PILOT = ROOT / "tests" / "data" / "vandyke.csv"
R_SCRIPT = """
.libPaths(c("{rlib}", .libPaths()))
suppressPackageStartupMessages(library(RJafroc))
n <- {repeat}
dataset02 <- {dataset}
tp <- sapply(1:n, function(i) system.time(p <<- SsPowerGivenJK(
  dataset02, FOM = "Wilcoxon", J = 10, K = 114, effectSize = 0.08))[["elapsed"]])
ts <- sapply(1:n, function(i) system.time(s <<- SsSampleSizeKGivenJ(
  dataset02, FOM = "Wilcoxon", J = 10, effectSize = 0.08))[["elapsed"]])
cat(jsonlite::toJSON(list(power = p$powerRRRC, power_s = median(tp), cases = s$KRRRC,
  cases_power = s$powerRRRC, cases_s = median(ts)), digits = NA, auto_unbox = TRUE))
"""


# A pilot CSV (negatives first, as simulate_roe_metz writes it) as an RJafroc ROC dataset.
R_FROM_CSV = """local({{
  d <- read.csv("{path}"); I <- max(d$treatment); J <- max(d$reader)
  neg <- d[d$truth == 0, ]; pos <- d[d$truth == 1, ]
  K1 <- length(unique(neg$case)); K2 <- length(unique(pos$case))
  NL <- array(neg$rating[order(neg$treatment, neg$reader, neg$case)], c(K1, J, I))
  LL <- array(pos$rating[order(pos$treatment, pos$reader, pos$case)], c(K2, J, I))
  Df2RJafrocDataset(aperm(NL, c(3, 2, 1)), aperm(LL, c(3, 2, 1)))
}})"""


def best_wall(argv: list[str], repeat: int) -> tuple[float, str]:
    walls, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - start)
        out = done.stdout
    return min(walls), out


def median_seconds(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_pilot(path: Path, dataset: str, repeat: int, rlib: str) -> dict[str, float]:
    """Times (seconds) of ours and RJafroc's power and sample size on one pilot; checks both
    give the same numbers first."""
    cli = [sys.executable, "-m", "analysis", "power", str(path), "--readers", "10"]
    cli += ["--effect", "0.08", "--json"]
    power_wall, power_out = best_wall([*cli, "--cases", "114"], repeat)
    cases_wall, cases_out = best_wall([*cli, "--target-power", "0.8"], repeat)
    frame = read_mrmc_csv(path)
    power_s = median_seconds(
        lambda: power_given(pilot_components(frame), readers=10, cases=114, effect=0.08), repeat
    )
    cases_s = median_seconds(
        lambda: cases_for_power(pilot_components(frame), readers=10, target_power=0.8, effect=0.08),
        repeat,
    )
    script = R_SCRIPT.format(rlib=rlib, repeat=repeat, dataset=dataset)
    start = time.perf_counter()
    r = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    r_wall = time.perf_counter() - start
    rj = json.loads(r.stdout.strip().splitlines()[-1])
    ours_power = json.loads(power_out)["power"]
    ours_cases = json.loads(cases_out)
    if abs(ours_power - rj["power"]) > 1e-6 * rj["power"] or ours_cases["cases"] != rj["cases"]:
        raise SystemExit(f"results differ: ours {ours_power} {ours_cases}, RJafroc {rj}")
    return {
        "power": ours_power,
        "cases": ours_cases["cases"],
        "power_wall": power_wall,
        "cases_wall": cases_wall,
        "power_s": power_s,
        "cases_s": cases_s,
        "r_power_s": rj["power_s"],
        "r_cases_s": rj["cases_s"],
        "r_wall": r_wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rlib", default="/work/r/lib-common")
    parser.add_argument(
        "--large", default="10x500", help="a simulated pilot, READERSxCASES ('' to skip)"
    )
    args = parser.parse_args(argv)

    pilots = [("Van Dyke, 5 x 114", PILOT, "dataset02")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.large:
            n_readers, n_cases = (int(x) for x in args.large.split("x"))
            path = Path(tmp) / "large.csv"
            simulate_roe_metz(
                n_readers=n_readers,
                n_positive=n_cases // 2,
                n_negative=n_cases - n_cases // 2,
                mu=(0.75, 1.0),
                seed=2026,
            ).round(4).to_csv(path, index=False)
            pilots.append((f"simulated, {args.large}", path, R_FROM_CSV.format(path=path)))
        print(
            "| pilot | what | value | python -m analysis (process) | in process | RJafroc (in R) |"
        )
        print("|---|---|---|---|---|---|")
        for label, path, dataset in pilots:
            t = bench_pilot(path, dataset, args.repeat, args.rlib)
            print(
                f"| {label} | power J=10 K=114 | {t['power']:.6f} | "
                f"{t['power_wall']:.3f} s | {t['power_s'] * 1e3:.1f} ms | {t['r_power_s']:.3f} s |"
            )
            print(
                f"| {label} | cases for power 0.8, J=10 | {t['cases']} | {t['cases_wall']:.3f} s | "
                f"{t['cases_s'] * 1e3:.1f} ms | {t['r_cases_s']:.3f} s |",
                flush=True,
            )
            print(f"<!-- Rscript process for {label}: {t['r_wall']:.1f} s -->")

    components = pilot_components(read_mrmc_csv(PILOT))
    readers, cases = np.meshgrid(np.arange(2, 31), np.arange(20, 1001, 20), indexing="ij")
    grid_s = median_seconds(
        lambda: power_arrays(
            components, readers=readers, cases=cases, effect=0.05, alpha=0.05, factors="RRRC"
        ),
        args.repeat,
    )
    print(f"\nplanning grid of {readers.size} cells (J 2..30 x K 20..1000): {grid_s * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
