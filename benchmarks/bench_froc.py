"""Time ``python -m analysis froc`` against RJafroc's ``St()`` on the same simulated workbook.

    .venv/bin/python benchmarks/bench_froc.py [--treatments 2 --readers 10 --normal 500
        --abnormal 500 --max-lesions 3 --fom wAFROC --method OR --seed 1] [--no-r]

Simulates a FROC study (per case a Poisson number of NL marks with N(0, 1) ratings; each lesion
marked with probability 0.7 and rated N(1.5 + 0.3 i, 1) in treatment i; ratings rounded to 3
decimals), writes it with :func:`analysis.froc.workbook_bytes`, then in the same run:

- ``python -m analysis froc FILE --fom F --method M --json`` as a child process (wall time,
  reading the workbook included), and :func:`analysis.froc.analysis.froc_analysis` alone;
- ``Rscript``: RJafroc 2.1.3 ``DfReadDataFile(FILE)`` and ``St(ds, FOM = F, method = M,
  analysisOption = "RRRC")``, each timed inside R with ``proc.time()``, and the child's wall
  time; the script checks that both give the same F statistic and p-value (1e-6 relative).

Results go in ``benchmarks/froc.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.froc import froc_data, read_workbook, workbook_bytes  # noqa: E402
from analysis.froc.analysis import froc_analysis  # noqa: E402

R_SCRIPT = r"""
suppressMessages({
  .libPaths(c("/work/r/lib-common", .libPaths()))
  library(RJafroc); library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
t0 <- proc.time()[["elapsed"]]
ds <- DfReadDataFile(args[1])
t1 <- proc.time()[["elapsed"]]
st <- St(ds, FOM = args[2], method = args[3], analysisOption = "RRRC")
t2 <- proc.time()[["elapsed"]]
cat(toJSON(list(read_s = t1 - t0, st_s = t2 - t1,
                F = st$RRRC$FTests["Treatment", "FStat"], p = st$RRRC$FTests["Treatment", "p"],
                version = as.character(packageVersion("RJafroc"))),
           auto_unbox = TRUE, digits = NA))
"""


def simulate(args: argparse.Namespace) -> bytes:
    """The simulated study as an RJafroc workbook."""
    rng = np.random.default_rng(args.seed)
    normal = [str(k) for k in range(1, args.normal + 1)]
    abnormal = [str(k) for k in range(args.normal + 1, args.normal + args.abnormal + 1)]
    per_case = rng.integers(1, args.max_lesions + 1, size=args.abnormal)
    truth = pd.DataFrame(
        {
            "case": normal + [c for c, n in zip(abnormal, per_case, strict=True) for _ in range(n)],
            "lesion": ["0"] * args.normal + [str(x) for n in per_case for x in range(1, n + 1)],
            "weight": 0.0,
        }
    )
    lesions = truth[truth["lesion"] != "0"]
    nl_rows, ll_rows = [], []
    cases = np.array(normal + abnormal)
    for i in range(args.treatments):
        for j in range(args.readers):
            n_marks = rng.poisson(1.0, size=cases.size)
            nl_rows.append(
                pd.DataFrame(
                    {
                        "reader": str(j + 1),
                        "treatment": str(i + 1),
                        "case": np.repeat(cases, n_marks),
                        "rating": np.round(rng.normal(0.0, 1.0, n_marks.sum()), 3),
                    }
                )
            )
            hit = rng.random(len(lesions)) < 0.7
            ll_rows.append(
                pd.DataFrame(
                    {
                        "reader": str(j + 1),
                        "treatment": str(i + 1),
                        "case": lesions["case"].to_numpy()[hit],
                        "lesion": lesions["lesion"].to_numpy()[hit],
                        "rating": np.round(rng.normal(1.5 + 0.3 * i, 1.0, hit.sum()), 3),
                    }
                )
            )
    data = froc_data(truth, pd.concat(nl_rows), pd.concat(ll_rows))
    return workbook_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--treatments", type=int, default=2)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--normal", type=int, default=500)
    parser.add_argument("--abnormal", type=int, default=500)
    parser.add_argument("--max-lesions", type=int, default=3)
    parser.add_argument("--fom", default="wAFROC")
    parser.add_argument("--method", default="OR", choices=("OR", "DBM"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-r", action="store_true", help="skip RJafroc")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "froc.xlsx"
        path.write_bytes(simulate(args))
        print(
            f"{args.treatments} treatments x {args.readers} readers x "
            f"{args.normal + args.abnormal} cases ({args.abnormal} abnormal, <= "
            f"{args.max_lesions} lesions), {args.fom}, {args.method}; workbook "
            f"{path.stat().st_size / 1e6:.1f} MB"
        )
        command = [sys.executable, "-m", "analysis", "froc", str(path), "--fom", args.fom,
                   "--method", args.method, "--json"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        ours = json.loads(done.stdout)["global_test"]
        data = read_workbook(path)
        t0 = time.perf_counter()
        froc_analysis(data, fom=args.fom, method=args.method)
        engine = time.perf_counter() - t0
        print(f"python -m analysis froc: {wall:.2f} s wall (froc_analysis alone {engine:.3f} s)")
        print(f"  F = {ours['statistic']:.8g}, p = {ours['p_value']:.8g}")
        if args.no_r:
            return
        script = Path(tmp) / "st.R"
        script.write_text(R_SCRIPT)
        t0 = time.perf_counter()
        done = subprocess.run(
            ["Rscript", str(script), str(path), args.fom, args.method],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r_wall = time.perf_counter() - t0
        theirs = json.loads(done.stdout)
        print(
            f"RJafroc {theirs['version']} St(): {r_wall:.2f} s wall (DfReadDataFile "
            f"{theirs['read_s']:.2f} s, St {theirs['st_s']:.2f} s)"
        )
        print(f"  F = {theirs['F']:.8g}, p = {theirs['p']:.8g}")
        same = math.isclose(ours["statistic"], theirs["F"], rel_tol=1e-6) and math.isclose(
            ours["p_value"], theirs["p"], rel_tol=1e-6
        )
        print(f"same F and p (1e-6): {same}; St / froc_analysis: {theirs['st_s'] / engine:.0f}x")


if __name__ == "__main__":
    main()
