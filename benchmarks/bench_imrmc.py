"""Benchmark :func:`analysis.mrmc.imrmc_analysis` and ``python -m analysis imrmc`` on a large study.

Simulates a Roe-Metz study (default 50 readers x 5000 cases, half positive, 2 treatments) with
:func:`analysis.simulate.simulate_roe_metz`, removes 10% of the reads at random (so the design is
not fully crossed), and reports, best of ``--repeat`` runs:

* the analysis alone, in process on the data frame (wall and CPU seconds);
* ``python -m analysis imrmc FILE.csv --json`` as a whole subprocess (start-up, CSV reading,
  analysis, JSON).

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_imrmc.py [--readers 50 --cases 5000]``.
Target: well under 2 s for the analysis of 50 readers x 5000 cases x 2 treatments.
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

from analysis.mrmc import imrmc_analysis  # noqa: E402
from analysis.simulate import simulate_roe_metz  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--missing", type=float, default=0.1, help="share of reads removed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2026)
    frame = simulate_roe_metz(
        n_readers=args.readers,
        n_positive=args.cases // 2,
        n_negative=args.cases - args.cases // 2,
        mu=(1.0, 1.2),
        seed=rng,
    )
    frame = frame.loc[rng.random(len(frame)) >= args.missing].reset_index(drop=True)
    wall, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        imrmc_analysis(frame)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.csv"
        frame.to_csv(path, index=False)
        whole = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "analysis", "imrmc", str(path), "--json"],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            whole.append(time.perf_counter() - t0)
    print(
        f"{args.readers} readers x {args.cases} cases x 2 treatments, {len(frame)} reads "
        f"({100 * args.missing:g}% removed): analysis {min(wall):.3f} s wall, "
        f"{min(cpu):.3f} s CPU; python -m analysis imrmc --json {min(whole):.3f} s "
        f"(best of {args.repeat})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
