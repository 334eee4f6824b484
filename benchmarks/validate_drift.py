"""False alarms and power of the AI score drift check (``analysis.drift.score_drift``).

Each simulated study has ``K`` sites of ``n`` cases each (a third positive) and one or more
finding types. The AI probability of a case is ``Phi(latent)`` with ``latent = mu * truth -
mu / 2 + delta_site + N(0, 1)`` (the AI model of ``analysis.simulate.simulate_long_frame``,
``mu = 2``), rounded to 4 decimals as stored. Under the null every ``delta_site`` is 0; in a
power cell the last site has ``delta_site = delta`` (its scores move for both classes).

Per cell, over ``--n-sims`` studies, the script reports

* ``alarm``: the share of studies with any row flagged (``level`` not ``stable``), KS with Holm
  over every comparison of the report (the default), with its 95% Wilson interval; under the
  null this is the familywise false-alarm rate, to be at most alpha;
* ``alarm_fs``: the same with Holm within each finding type x stratum;
* ``alarm_raw``: the same with unadjusted KS p-values at alpha;
* ``alarm_psi``: the former rule, any PSI >= 0.1 ("moderate" or "major" by the rule of thumb);
* in power cells, ``power_all``: the share of studies where the shifted site's all-cases row
  is flagged, ``power_any``: where any of its rows (all, positive or negative cases) is, and
  ``wrong``: where a site that did not shift is flagged;
* ``ci_has_psi``: over the first ``--n-ci`` studies, the share of tested rows whose PSI
  bootstrap interval (``--n-boot`` resamples) contains the PSI estimate.

The levels do not depend on the bootstrap, so the alarm rates are computed with ``n_boot=0``;
``alarm_fs`` re-adjusts the same raw p-values per family with ``analysis.drift.holm_adjust``.
Report what comes out; do not tune. Usage::

    nice -n 10 python benchmarks/validate_drift.py --n-sims 1000 --n-sims-power 300 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from validation import wilson

from analysis._common import holm_adjust
from analysis.drift import DriftResult, score_drift

ALPHA = 0.05


@dataclass(frozen=True)
class Cell:
    n_sites: int
    n_per_site: int
    n_findings: int
    delta: float
    n_sims: int
    alarm: float
    alarm_ci: tuple[float, float]
    alarm_fs: float
    alarm_raw: float
    alarm_psi: float
    power_all: float | None
    power_any: float | None
    wrong: float | None
    ci_has_psi: float
    seconds: float


def simulate_study(
    rng: np.random.Generator, n_sites: int, n: int, n_findings: int, delta: float, mu: float = 2.0
) -> pd.DataFrame:
    sites = np.repeat([f"site-{k + 1}" for k in range(n_sites)], n)
    shift = np.repeat([0.0] * (n_sites - 1) + [delta], n)
    truth = np.tile((np.arange(n) % 3 == 0).astype(np.int64), n_sites)
    frames = []
    for f in range(n_findings):
        latent = mu * truth - mu / 2 + shift + rng.normal(0.0, 1.0, truth.size)
        frames.append(
            pd.DataFrame(
                {
                    "case": [f"c{i}" for i in range(truth.size)],
                    "finding": f"finding-{f + 1}",
                    "truth": truth,
                    "ai_probability": np.round(special.ndtr(latent), 4),
                    "site": sites,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _flagged(result: DriftResult) -> list[tuple[str, str, str]]:
    return [
        (r.finding, r.stratum, r.site)
        for r in result.rows
        if r.level not in ("stable", "reference", "n/a")
    ]


def _family_alarm(result: DriftResult) -> bool:
    """Any rejection with Holm within each finding type x stratum instead of the report."""
    families: dict[tuple[str, str], list[float]] = {}
    for r in result.rows:
        if r.level not in ("reference", "n/a"):
            families.setdefault((r.finding, r.stratum), []).append(r.ks_p_value)
    return any(bool(np.any(holm_adjust(np.array(p)) <= ALPHA)) for p in families.values())


def run_cell(
    n_sites: int,
    n: int,
    n_findings: int,
    delta: float,
    n_sims: int,
    n_ci: int,
    n_boot: int,
    seed: int,
) -> Cell:
    rng = np.random.default_rng(seed)
    shifted = f"site-{n_sites}"
    alarm = alarm_fs = alarm_raw = alarm_psi = hit_all = hit_any = wrong = 0
    ci_rows = ci_in = 0
    t0 = time.perf_counter()
    for i in range(n_sims):
        study = simulate_study(rng, n_sites, n, n_findings, delta)
        res = score_drift(study, alpha=ALPHA, n_boot=0)
        flags = _flagged(res)
        alarm += bool(flags)
        alarm_fs += _family_alarm(res)
        tested = [r for r in res.rows if r.level not in ("reference", "n/a")]
        alarm_raw += any(r.ks_p_value <= ALPHA for r in tested)
        alarm_psi += any(r.psi >= 0.1 for r in tested)
        hit_all += any(s == "all" and site == shifted for _, s, site in flags)
        hit_any += any(site == shifted for _, _, site in flags)
        wrong += any(site != shifted for _, _, site in flags)
        if i < n_ci:
            with_ci = score_drift(study, alpha=ALPHA, n_boot=n_boot, seed=i)
            for r in with_ci.rows:
                if r.level not in ("reference", "n/a"):
                    ci_rows += 1
                    ci_in += r.psi_ci_lower <= r.psi <= r.psi_ci_upper
    return Cell(
        n_sites=n_sites,
        n_per_site=n,
        n_findings=n_findings,
        delta=delta,
        n_sims=n_sims,
        alarm=alarm / n_sims,
        alarm_ci=wilson(alarm, n_sims),
        alarm_fs=alarm_fs / n_sims,
        alarm_raw=alarm_raw / n_sims,
        alarm_psi=alarm_psi / n_sims,
        power_all=hit_all / n_sims if delta else None,
        power_any=hit_any / n_sims if delta else None,
        wrong=wrong / n_sims if delta else None,
        ci_has_psi=ci_in / ci_rows if ci_rows else float("nan"),
        seconds=time.perf_counter() - t0,
    )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=1000, help="studies per null cell")
    parser.add_argument("--n-sims-power", type=int, default=300, help="studies per power cell")
    parser.add_argument("--n-ci", type=int, default=50, help="studies with PSI intervals")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--null-sites", default="3,4,6", help="K of the null cells")
    parser.add_argument("--null-cases", default="20", help="n per site of the null cells")
    parser.add_argument("--power-sites", type=int, default=4)
    parser.add_argument("--power-cases", default="20,50")
    parser.add_argument("--deltas", default="0.5,1,1.5", help="latent shifts of the last site")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    plan: list[tuple[int, int, int, float]] = [
        (k, n, 1, 0.0) for n in _ints(args.null_cases) for k in _ints(args.null_sites)
    ]
    plan.append((4, 50, 1, 0.0))
    plan.append((3, 20, 3, 0.0))  # the demo's shape: 3 sites, 3 finding types
    plan += [
        (args.power_sites, n, 1, float(d))
        for n in _ints(args.power_cases)
        for d in args.deltas.split(",")
    ]
    cells = []
    for offset, (k, n, n_f, delta) in enumerate(plan):
        n_sims = args.n_sims_power if delta else args.n_sims
        cell = run_cell(k, n, n_f, delta, n_sims, args.n_ci, args.n_boot, args.seed + offset)
        cells.append(cell)
        if not args.json:
            power = (
                ""
                if cell.power_all is None
                else f" power_all={cell.power_all:.3f} power_any={cell.power_any:.3f} "
                f"wrong={cell.wrong:.3f}"
            )
            print(
                f"K={k} n={n:3d} findings={n_f} delta={delta:3.1f} "
                f"alarm={cell.alarm:.4f} ({cell.alarm_ci[0]:.4f}, {cell.alarm_ci[1]:.4f}) "
                f"alarm_fs={cell.alarm_fs:.4f} alarm_raw={cell.alarm_raw:.4f} "
                f"alarm_psi={cell.alarm_psi:.4f}{power} ci_has_psi={cell.ci_has_psi:.3f} "
                f"[{cell.seconds:.1f} s]",
                flush=True,
            )
    if args.json:
        print(json.dumps({"alpha": ALPHA, "cells": [asdict(c) for c in cells]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
