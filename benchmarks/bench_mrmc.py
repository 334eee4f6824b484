"""Benchmark ``python -m analysis mrmc FILE.csv --json`` (OR RRRC, jackknife) as a whole process.

Generates balanced, fully crossed data with continuous ratings (2 treatments; by default
20 readers x 5000 cases and 50 readers x 10000 cases), then for each data set reports:

* the wall time of the whole subprocess (start-up, CSV reading, analysis, JSON), best of
  ``--repeat`` runs, and its peak resident memory (``os.wait4`` rusage of that child);
* the computation alone (placement values, jackknife covariance, OR inference, in process on the
  already laid-out design) and its ratio to a plain ``numpy.sort`` of the same ratings along the
  case axis, the floor for any rank-based method.

Usage: ``.venv/bin/python benchmarks/bench_mrmc.py [--sizes 20x5000 50x10000] [--repeat 3]``.
Targets (issue 3): <= 1 s and <= 3 s, each under 500 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As ``python -m analysis`` does (analysis/__main__.py): one BLAS thread, set before numpy loads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_study(path: Path, readers: int, cases: int, seed: int = 2026) -> None:
    """Continuous ratings: case + reader + treatment x reader effects and noise (Roe-Metz-like)."""
    rng = np.random.default_rng(seed)
    truth = (np.arange(cases) < cases // 2).astype(np.int64)
    case_effect = rng.normal(size=cases)
    rows = []
    for treatment in (1, 2):
        shift = 1.0 + 0.1 * (treatment - 1)
        for reader in range(1, readers + 1):
            rating = (
                shift * truth
                + case_effect
                + rng.normal(scale=0.3)
                + rng.normal(scale=0.7, size=cases)
            )
            block = np.empty((cases, 5))
            block[:, 0] = reader
            block[:, 1] = treatment
            block[:, 2] = np.arange(1, cases + 1)
            block[:, 3] = truth
            block[:, 4] = rating
            rows.append(block)
    with path.open("w") as handle:
        handle.write("reader,treatment,case,truth,rating\n")
        np.savetxt(handle, np.vstack(rows), fmt=["%d", "%d", "%d", "%d", "%.6f"], delimiter=",")


def run_once(path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``python -m analysis mrmc PATH --json``."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "analysis", "mrmc", str(path), "--json"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(
            f"analysis failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return wall, rss_mb


def compute_ratio(path: Path, repeat: int) -> tuple[float, float]:
    """Seconds of the analysis alone (best of ``repeat``) and of numpy.sort of the ratings."""
    from analysis.io import mrmc_design, read_mrmc_csv
    from analysis.mrmc import or_analysis_design

    design = mrmc_design(read_mrmc_csv(path))
    compute, sort = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        or_analysis_design(design)
        compute.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.sort(design.ratings, axis=-1)
        sort.append(time.perf_counter() - start)
    return min(compute), min(sort)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["20x5000", "50x10000"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    header = (
        f"{'readers x cases':>16} {'rows':>9} {'wall s':>8} {'peak MB':>8} "
        f"{'compute s':>10} {'sort s':>8} {'ratio':>6}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            readers, cases = (int(part) for part in size.split("x"))
            path = Path(tmp) / f"mrmc_{size}.csv"
            write_study(path, readers, cases)
            runs = [run_once(path) for _ in range(args.repeat)]
            wall = min(run[0] for run in runs)
            peak = max(run[1] for run in runs)
            compute, sort = compute_ratio(path, args.repeat)
            print(
                f"{size:>16} {2 * readers * cases:>9} {wall:>8.3f} {peak:>8.1f} "
                f"{compute:>10.3f} {sort:>8.4f} {compute / sort:>6.1f}"
            )


if __name__ == "__main__":
    main()
