"""Time the PROPROC fit against MRMCaov's ``binormalLR_params`` on Van Dyke's 10 readings.

    .venv/bin/python benchmarks/bench_proproc.py [--no-r]

For each reader x treatment of ``tests/data/vandyke.csv``, one run each:

- :func:`analysis.proproc.fit_proproc` from MRMCaov's starting values, and a jackknife-style
  refit (the first case left out) started from that fit (``start=``);
- ``Rscript`` (``R_LIBS=/work/r/lib-common`` unless ``R_LIBS`` is set): MRMCaov 0.3.0
  ``binormalLR_params(truth, rating)``, timed in R by ``proc.time()``.

It prints a Markdown table; results go in ``benchmarks/proproc.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd

from analysis.proproc import fit_proproc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "vandyke.csv"

R_TIMING = """
suppressPackageStartupMessages(library(MRMCaov))
d <- read.csv("%s")
out <- list()
for (t in 1:2) for (r in 1:5) {
  s <- d[d$treatment == t & d$reader == r, ]
  started <- proc.time()[["elapsed"]]
  suppressWarnings(MRMCaov:::binormalLR_params(factor(s$truth), s$rating))
  out[[length(out) + 1]] <- proc.time()[["elapsed"]] - started
}
cat(jsonlite::toJSON(unlist(out), digits = NA))
"""


def _r_seconds() -> list[float]:
    env = {**os.environ, "R_LIBS": os.environ.get("R_LIBS", "/work/r/lib-common")}
    done = subprocess.run(
        ["Rscript", "-e", R_TIMING % DATA],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return [float(v) for v in json.loads(done.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-r", action="store_true", help="time ours only")
    args = parser.parse_args()
    data = pd.read_csv(DATA)
    rows = []
    for treatment in (1, 2):
        for reader in range(1, 6):
            s = data[(data.reader == reader) & (data.treatment == treatment)]
            neg = s.rating[s.truth == 0].to_numpy()
            pos = s.rating[s.truth == 1].to_numpy()
            started = time.perf_counter()
            fit = fit_proproc(neg, pos)
            full = time.perf_counter() - started
            started = time.perf_counter()
            fit_proproc(neg[1:], pos, start=fit)
            refit = time.perf_counter() - started
            rows.append((reader, treatment, fit.auc(), full, refit))
    r_seconds = [float("nan")] * len(rows) if args.no_r else _r_seconds()
    print("| reader | treatment | AUC | ours s | refit from start s | MRMCaov s |")
    print("|--------|-----------|-----|--------|--------------------|-----------|")
    for (reader, treatment, auc, full, refit), r in zip(rows, r_seconds, strict=True):
        print(f"| {reader} | {treatment} | {auc:.6f} | {full:.3f} | {refit:.3f} | {r:.3f} |")
    total = [sum(col) for col in zip(*[(row[3], row[4]) for row in rows], strict=True)]
    print(f"| all 10 | | | {total[0]:.3f} | {total[1]:.3f} | {sum(r_seconds):.3f} |")


if __name__ == "__main__":
    main()
