"""Time ``mrmc --metric binormal_auc|binormalLR_auc`` (and partial AUCs) against MRMCaov 0.3.0.

Runs the command line ``python -m analysis mrmc tests/data/vandyke.csv --metric binormal_auc
--json`` (jackknife covariance, a fresh process as a user runs it) and the same analysis in
process, then, where ``Rscript`` and MRMCaov are installed (``MRMCAOV_LIB``, default
``/work/r/lib-common``), MRMCaov's ``mrmc(binormal_auc(truth, rating), treatment, reader, case,
data = VanDyke, cov = jackknife)`` (or ``binormalLR_auc``, ``empirical_auc``, with the same
partial areas) timed inside R (``system.time``, the R start-up excluded). One run each
(``--repeat`` for more), as the results table in ``benchmarks/metrics.md``; ``--cases`` picks
rows of the table by name.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_metrics.py [--repeat 1] [--cases A B]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.io import read_mrmc_csv  # noqa: E402
from analysis.mrmc import or_analysis  # noqa: E402
from analysis.partial import PartialArea  # noqa: E402

VANDYKE = ROOT / "tests" / "data" / "vandyke.csv"
R_SCRIPT = """
.libPaths(c(Sys.getenv("MRMCAOV_LIB", "/work/r/lib-common"), .libPaths()))
suppressPackageStartupMessages(library(MRMCaov))
data(VanDyke, package = "MRMCaov")
metric <- commandArgs(TRUE)[1]
call <- switch(metric,
  binormal = quote(mrmc(binormal_auc(truth, rating), treatment, reader, case,
                        data = VanDyke, cov = jackknife)),
  binormal_partial = quote(mrmc(binormal_auc(truth, rating, partial = "specificity",
                                             min = 0.8, max = 1), treatment, reader, case,
                                data = VanDyke, cov = jackknife)),
  empirical_partial = quote(mrmc(empirical_auc(truth, rating, partial = "specificity",
                                               min = 0.8, max = 1), treatment, reader, case,
                                 data = VanDyke, cov = jackknife)),
  proproc = quote(mrmc(binormalLR_auc(truth, rating), treatment, reader, case,
                       data = VanDyke, cov = jackknife)),
  proproc_partial = quote(mrmc(binormalLR_auc(truth, rating, partial = "sensitivity",
                                              min = 0.7, max = 1), treatment, reader, case,
                               data = VanDyke, cov = jackknife))
)
elapsed <- system.time(suppressWarnings(eval(call)))[["elapsed"]]
cat(sprintf("%.3f\\n", elapsed))
"""
CASES = {
    "binormal": ("binormal_auc", None),
    "binormal_partial": ("binormal_auc", PartialArea("specificity", 0.8, 1.0)),
    "empirical_partial": ("empirical_auc", PartialArea("specificity", 0.8, 1.0)),
    "proproc": ("binormalLR_auc", None),
    "proproc_partial": ("binormalLR_auc", PartialArea("sensitivity", 0.7, 1.0)),
}


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def mrmcaov_seconds(name: str, repeat: int) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            ["Rscript", "-e", R_SCRIPT, name], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            return None
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    args = parser.parse_args()
    command = [sys.executable, "-m", "analysis", "mrmc", str(VANDYKE), "--json"]
    for metric in dict.fromkeys(
        CASES[name][0] for name in args.cases if name != "empirical_partial"
    ):
        cli = best_of(
            args.repeat,
            functools.partial(
                subprocess.run,
                [*command, "--metric", metric],
                cwd=ROOT,
                check=True,
                capture_output=True,
            ),
        )
        print(f"command line, --metric {metric} (process start included): {cli:.3f} s")
    frame = read_mrmc_csv(VANDYKE)
    print("| analysis (Van Dyke, jackknife) | this project | MRMCaov 0.3.0 | ratio |")
    print("| --- | --- | --- | --- |")
    for name in args.cases:
        metric, partial = CASES[name]

        def run(metric: str = metric, partial: PartialArea | None = partial) -> object:
            return or_analysis(frame, metric=metric, partial=partial)  # type: ignore[arg-type]

        ours = best_of(args.repeat, run)
        theirs = mrmcaov_seconds(name, args.repeat)
        peer = "-" if theirs is None else f"{theirs:.3f} s"
        ratio = "-" if theirs is None else f"{theirs / ours:.0f}x"
        print(f"| {name} | {ours:.3f} s | {peer} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
