"""Time the bootstrap covariance of the OR analysis (``--cov bootstrap``) in process.

For Van Dyke (``tests/data/vandyke.csv``) and simulated fully crossed studies (2 treatments,
continuous ratings, :func:`bench_mrmc.write_study`), reports the best of ``--repeat`` wall times
of :func:`analysis.mrmc.bootstrap.bootstrap_metric_and_covariance` with ``--n-boot`` replicates
(empirical AUC), next to the jackknife covariance of the same design.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_bootstrap.py [--sizes 10x2000 20x5000]
[--n-boot 2000] [--repeat 3]``. Results: ``benchmarks/bootstrap.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_mrmc import write_study  # noqa: E402

from analysis.io import MRMCDesign, mrmc_design, read_mrmc_csv  # noqa: E402
from analysis.mrmc.bootstrap import bootstrap_metric_and_covariance  # noqa: E402
from analysis.mrmc.covariance import metric_and_covariance  # noqa: E402


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def report(name: str, design: MRMCDesign, n_boot: int, repeat: int) -> None:
    boot = best_of(repeat, lambda: bootstrap_metric_and_covariance(design, "empirical_auc",
                                                                   n_boot=n_boot))  # fmt: skip
    jack = best_of(repeat, lambda: metric_and_covariance(design, "empirical_auc", "jackknife"))
    t, r, k = design.ratings.shape
    print(f"| {name} | {t} x {r} x {k} | {boot:.3f} s | {jack:.3f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["10x2000", "20x5000"])
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"| data | treatments x readers x cases | bootstrap ({args.n_boot}) | jackknife |")
    print("| --- | --- | --- | --- |")
    vandyke = mrmc_design(read_mrmc_csv(ROOT / "tests" / "data" / "vandyke.csv"))
    report("Van Dyke", vandyke, args.n_boot, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            readers, cases = (int(x) for x in size.split("x"))
            path = Path(tmp) / f"{size}.csv"
            write_study(path, readers, cases)
            report(f"simulated {size}", mrmc_design(read_mrmc_csv(path)), args.n_boot, 1)


if __name__ == "__main__":
    main()
