"""Coverage of Fleiss' kappa and missed-rate intervals, GEE type I error, missed-findings speed.

Three measurements, reported as they come out (nothing is tuned to them):

1. **Fleiss' kappa** (:func:`analysis.agreement.fleiss_kappa`): items of true category ``c`` drawn
   from ``pi = (0.5, 0.3, 0.2)``; each of ``m`` raters reports ``c`` with probability ``a`` and
   otherwise a category drawn from ``pi``. The population Fleiss kappa is then exactly ``a^2``
   (pairwise agreement ``a^2 + (1 - a^2) sum pi^2`` against chance ``sum pi^2``). Coverage of the
   95% interval (jackknife SE over items) and, for comparison, of a Wald interval on the null SE
   of Fleiss, Nee & Landis (1979).
2. **Missed findings** (:func:`analysis.missed.missed_findings`) on long frames from
   :func:`analysis.simulate.simulate_long_frame` (Roe-Metz latent ratings, call = confidence >=
   50, two finding types). The call is 1 when ``X - mu_arm / 2 >= c0`` with ``c0 =
   Phi^-1(0.495)`` (confidence is rounded), so the population miss rate of an arm is
   ``Phi((c0 - mu_arm / 2) / s)`` and its false-positive rate ``1 - Phi((c0 + mu_arm / 2) / s)``,
   ``s^2`` the sum of the Roe-Metz variance components. Reported: coverage of the true
   assisted - unassisted difference by the OR interval (reader-averaged rate) and by the GEE
   rate-difference interval, for one finding type and the pooled pair; under the null (equal
   ``mu``) the GEE odds-ratio test's rejection rate (type I error). A "part-way" cell drops the
   assisted reads of one reader on half of the cases: the OR analysis is skipped there and the
   pooled rate with its case-clustered interval is reported (its coverage of the true rate).
3. **Speed**: ``missed_findings`` on 50 readers x 5000 cases x 2 arms x 2 finding types
   (1,000,000 rows), best of three.

Usage::

    nice -n 10 python benchmarks/validate_missed_kappa.py [--kappa-sims 2000] [--study-sims 1000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import special

from analysis.agreement import fleiss_kappa, fleiss_kappa_null_test
from analysis.missed import missed_findings
from analysis.simulate import roe_metz_params, simulate_long_frame

Z = 1.959963984540054
PI = np.array([0.5, 0.3, 0.2])


def kappa_cell(n_items: int, m: int, kappa: float, n_sims: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    a = math.sqrt(kappa)
    cover = cover_null = 0
    for _ in range(n_sims):
        truth = rng.choice(PI.size, n_items, p=PI)
        keep = rng.random((n_items, m)) < a
        ratings = np.where(keep, truth[:, None], rng.choice(PI.size, (n_items, m), p=PI))
        counts = np.stack([(ratings == j).sum(1) for j in range(PI.size)], axis=1)
        est = fleiss_kappa(counts)
        cover += est.ci_lower <= kappa <= est.ci_upper
        se0 = fleiss_kappa_null_test(counts)[0]
        cover_null += abs(est.kappa - kappa) <= Z * se0
    return f"| {n_items} | {m} | {kappa:.1f} | {cover / n_sims:.3f} | {cover_null / n_sims:.3f} |"


def _true_rates(mu: float, structure: str) -> tuple[float, float]:
    """Population (miss, false-positive) rate of an arm with separation ``mu``."""
    p = roe_metz_params(structure)
    s = math.sqrt(sum(p.to_dict().values()))
    c0 = float(special.ndtri(0.495))
    miss = float(special.ndtr((c0 - mu / 2.0) / s))
    fp = 1.0 - float(special.ndtr((c0 + mu / 2.0) / s))
    return miss, fp


def _part_way(long: pd.DataFrame) -> pd.DataFrame:
    cases = sorted(long["case"].unique())
    late = long["case"].isin(cases[len(cases) // 2 :])
    return long[~((long["reader"] == "reader-1") & (long["arm"] == "assisted") & late)]


def study_cell(
    structure: str,
    n_readers: int,
    n_cases: int,
    mu_u: float,
    mu_a: float,
    n_sims: int,
    seed: int,
    part_way: bool,
) -> str:
    true = [_true_rates(mu, structure) for mu in (mu_u, mu_a)]
    diff = {"missed": true[1][0] - true[0][0], "false_positive": true[1][1] - true[0][1]}
    arm_true = {"missed": (true[0][0], true[1][0]), "false_positive": (true[0][1], true[1][1])}
    keys = ("or_missed", "or_fp", "or_pooled", "gee_missed", "gee_pooled", "arm_cover")
    hits = dict.fromkeys(keys, 0)
    arm_total = 0
    gee_reject = gee_runs = 0
    t0 = time.perf_counter()
    for sim in range(n_sims):
        long = simulate_long_frame(
            seed * 100_000 + sim,
            n_readers=n_readers,
            n_cases=n_cases,
            mu_unassisted=mu_u,
            mu_assisted=mu_a,
            structure=structure,
        )
        if part_way:
            long = _part_way(long)
        res = missed_findings(long)
        one, pooled = res.findings[0], res.findings[-1]
        for key, part, kind in (
            ("or_missed", one.missed, "missed"),
            ("or_fp", one.false_positive, "false_positive"),
            ("or_pooled", pooled.missed, "missed"),
        ):
            d = part.or_difference
            hits[key] += d is not None and d.ci_lower <= diff[kind] <= d.ci_upper
        for key, part in (("gee_missed", one.missed), ("gee_pooled", pooled.missed)):
            g = part.gee
            hits[key] += g is not None and (
                g.difference.ci_lower <= diff["missed"] <= g.difference.ci_upper
            )
        for part, kind in ((one.missed, "missed"), (one.false_positive, "false_positive")):
            for arm, value in zip(part.arms, arm_true[kind], strict=True):
                arm_total += 1
                hits["arm_cover"] += arm.ci_lower <= value <= arm.ci_upper
        for part in (one.missed, pooled.missed):
            if part.gee is not None:
                gee_runs += 1
                gee_reject += part.gee.p_value < 0.05
    seconds = time.perf_counter() - t0
    null = mu_u == mu_a
    design = f"{structure} {n_readers}r x {n_cases}c" + (" part-way" if part_way else "")

    def rate(key: str) -> str:
        return "-" if part_way and key.startswith("or") else f"{hits[key] / n_sims:.3f}"

    typ = f"{gee_reject / gee_runs:.3f}" if null and gee_runs else "-"
    return (
        f"| {design} | {mu_u} / {mu_a} | {diff['missed']:+.3f} | {rate('or_missed')} | "
        f"{rate('or_fp')} | {rate('or_pooled')} | {rate('gee_missed')} | "
        f"{rate('gee_pooled')} | {typ} | {hits['arm_cover'] / arm_total:.3f} | {seconds:.0f} |"
    )


def speed() -> str:
    long = simulate_long_frame(0, n_readers=50, n_cases=5000)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        missed_findings(long)
        times.append(time.perf_counter() - t0)
    return f"{len(long):,} rows: best {min(times):.2f} s, all " + ", ".join(
        f"{t:.2f}" for t in times
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kappa-sims", type=int, default=2000)
    parser.add_argument("--study-sims", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    print("| items | raters | kappa | jackknife CI | null-SE CI |")
    print("|---|---|---|---|---|")
    seed = args.seed
    for n_items in (30, 100):
        for m in (3, 5):
            for kappa in (0.2, 0.5, 0.8):
                print(kappa_cell(n_items, m, kappa, args.kappa_sims, seed), flush=True)
                seed += 1
    print()
    print(
        "| design | mu u / a | true diff (missed) | OR missed | OR FP | OR pooled missed | "
        "GEE missed | GEE pooled | GEE type I | arm CI | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for structure, n_r, n_c, mu_u, mu_a, part in (
        ("HL", 5, 80, 1.2, 1.2, False),
        ("HH", 5, 80, 1.2, 1.2, False),
        ("HL", 5, 80, 1.2, 1.6, False),
        ("HH", 5, 80, 1.2, 1.6, False),
        ("HL", 10, 200, 1.2, 1.2, False),
        ("HL", 5, 80, 1.2, 1.6, True),
    ):
        print(study_cell(structure, n_r, n_c, mu_u, mu_a, args.study_sims, seed, part), flush=True)
        seed += 1
    if not args.skip_speed:
        print()
        print("speed:", speed())
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
