"""Predicted power (analysis.power) against the rejection rate of simulated pivotal studies.

For each Roe-Metz variance structure and figure of merit:

1. ``--n-pilots`` fully crossed pilots (5 readers, 50 + 50 cases, ``mu = (0.75, 1.1)``) are
   simulated with :func:`analysis.simulate.simulate_roe_metz`; the mean of their OR components
   (:func:`analysis.power.pilot_components`) stands for the population components, and each
   pilot's own prediction shows how much one pilot's estimate varies;
2. each pivotal design (factorial, or split-plot with ``G`` reader groups, each group reading
   its own ``K / G`` cases in both treatments: reader ``j`` keeps the cases ``k`` with
   ``(j - 1) mod G = (k - 1) mod G``) is simulated ``--n-sims`` times and analysed with
   :func:`analysis.mrmc.or_analysis` (jackknife, alpha 0.05; the split-plot studies as MRMCaov's
   partially paired design); the empirical power is its rejection rate, with a 95% Wilson
   interval;
3. the predicted power is :func:`analysis.power.power_given` with the mean components and the
   population effect: ``Phi(mu_2 / sqrt(2 V)) - Phi(mu_1 / sqrt(2 V))`` for the AUC and
   ``Phi((mu_2 - c) / sqrt(V)) - Phi((mu_1 - c) / sqrt(V))`` for the sensitivity of the call
   ``rating > c``, ``c = mu_1 / 2``, ``V`` the total variance of a rating. For split-plot
   designs the "as factorial" column is the factorial formula at the same J and K, which
   ignores that each reader reads only ``K / G`` cases;
4. split-plot pilots: the power of a factorial study predicted from factorial pilots (6 readers,
   60 + 60 cases) and from the same pilots cut into 2 reader groups (the split-plot pilot path of
   :func:`analysis.power.pilot_components`: within-group covariances, cases per reader) should
   agree (``--pilots-only`` runs this part alone).

Report what comes out; do not tune. Usage::

    python benchmarks/validate_power.py --n-sims 2000 --n-pilots 200 [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import special
from validation import wilson

from analysis.mrmc import or_analysis
from analysis.power import PowerComponents, pilot_components, power_given
from analysis.simulate import RoeMetzParams, roe_metz_params, simulate_roe_metz

MU = (0.75, 1.1)
THRESHOLD = MU[0] / 2.0
PILOT_READERS, PILOT_PER_CLASS = 5, 50
# (readers, cases, reader groups, factors)
DESIGNS = (
    (6, 100, 1, "RRRC"),
    (6, 100, 1, "FRRC"),
    (6, 120, 2, "RRRC"),
    (6, 120, 3, "RRRC"),
    (8, 160, 4, "RRRC"),
)


@dataclass(frozen=True)
class Cell:
    structure: str
    metric: str
    readers: int
    cases: int
    reader_groups: int
    factors: str
    effect: float
    predicted: float
    predicted_as_factorial: float
    pilot_predicted_median: float
    pilot_predicted_iqr: tuple[float, float]
    empirical: float
    empirical_ci: tuple[float, float]
    n_sims: int
    failed: int
    seconds: float


def calls(frame, metric: str):  # type: ignore[no-untyped-def]
    if metric == "sensitivity":
        frame = frame.assign(rating=(frame["rating"] > THRESHOLD).astype(float))
    return frame


def population_effect(params: RoeMetzParams, metric: str) -> float:
    v = params.total
    if metric == "sensitivity":
        return float(
            special.ndtr((MU[1] - THRESHOLD) / math.sqrt(v))
            - special.ndtr((MU[0] - THRESHOLD) / math.sqrt(v))
        )
    return float(special.ndtr(MU[1] / math.sqrt(2 * v)) - special.ndtr(MU[0] / math.sqrt(2 * v)))


def split_plot(frame, groups: int):  # type: ignore[no-untyped-def]
    if groups == 1:
        return frame
    keep = ((frame["reader"] - 1) % groups).to_numpy() == ((frame["case"] - 1) % groups).to_numpy()
    return frame.iloc[np.flatnonzero(keep)]


def mean_components(pilots: list[PowerComponents]) -> PowerComponents:
    def mean(name: str) -> float:
        return float(np.mean([getattr(p, name) for p in pilots]))

    return replace(
        pilots[0],
        var_TR=mean("var_TR"),
        var_error=mean("var_error"),
        cov1=mean("cov1"),
        cov2=mean("cov2"),
        cov3=mean("cov3"),
    )


def run_structure(structure: str, metric: str, n_sims: int, n_pilots: int, seed: int) -> list[Cell]:
    rng = np.random.default_rng(seed)
    params = roe_metz_params(structure, MU[0])
    effect = population_effect(params, metric)
    pilots = [
        pilot_components(
            calls(
                simulate_roe_metz(
                    n_readers=PILOT_READERS,
                    n_positive=PILOT_PER_CLASS,
                    n_negative=PILOT_PER_CLASS,
                    mu=MU,
                    structure=params,
                    seed=rng,
                ),
                metric,
            ),
            metric="sensitivity" if metric == "sensitivity" else "empirical_auc",
        )
        for _ in range(n_pilots)
    ]
    population = mean_components(pilots)
    cells = []
    for readers, cases, groups, factors in DESIGNS:
        plan = {"readers": readers, "cases": cases, "effect": effect, "factors": factors}
        predicted = power_given(population, reader_groups=groups, **plan).power  # type: ignore[arg-type]
        as_factorial = power_given(population, **plan).power  # type: ignore[arg-type]
        each = [power_given(p, reader_groups=groups, **plan).power for p in pilots]  # type: ignore[arg-type]
        t0 = time.perf_counter()
        reject = failed = 0
        for _ in range(n_sims):
            frame = simulate_roe_metz(
                n_readers=readers,
                n_positive=cases // 2,
                n_negative=cases // 2,
                mu=MU,
                structure=params,
                seed=rng,
            )
            frame = split_plot(calls(frame, metric), groups)
            try:
                res = or_analysis(
                    frame,
                    metric="sensitivity" if metric == "sensitivity" else "empirical_auc",
                    factors=factors,  # type: ignore[arg-type]
                )
            except ValueError:
                failed += 1
                continue
            reject += res.global_test.p_value < 0.05
        done = n_sims - failed
        cells.append(
            Cell(
                structure=structure,
                metric=metric,
                readers=readers,
                cases=cases,
                reader_groups=groups,
                factors=factors,
                effect=effect,
                predicted=predicted,
                predicted_as_factorial=as_factorial,
                pilot_predicted_median=float(np.median(each)),
                pilot_predicted_iqr=(
                    float(np.percentile(each, 25)),
                    float(np.percentile(each, 75)),
                ),
                empirical=reject / done,
                empirical_ci=wilson(reject, done),
                n_sims=done,
                failed=failed,
                seconds=time.perf_counter() - t0,
            )
        )
    return cells


def split_plot_pilots(structure: str, n_pilots: int, seed: int) -> tuple[float, float, float]:
    """Predicted power of a factorial study (J = 6, K = 100, RRRC) from the mean components of
    ``n_pilots`` factorial pilots (6 readers, 60 + 60 cases) and from the same pilots cut into a
    split-plot pilot (2 groups of 3 readers, 60 cases each), and the split-plot pilots' median
    single prediction. Both estimate the same population, so the powers should agree."""
    rng = np.random.default_rng(seed)
    params = roe_metz_params(structure, MU[0])
    effect = population_effect(params, "empirical_auc")
    factorial, split = [], []
    for _ in range(n_pilots):
        frame = simulate_roe_metz(
            n_readers=6, n_positive=60, n_negative=60, mu=MU, structure=params, seed=rng
        )
        factorial.append(pilot_components(frame))
        split.append(pilot_components(split_plot(frame, 2)))
    plan = {"readers": 6, "cases": 100, "effect": effect}
    each = [power_given(p, **plan).power for p in split]  # type: ignore[arg-type]
    return (
        power_given(mean_components(factorial), **plan).power,  # type: ignore[arg-type]
        power_given(mean_components(split), **plan).power,  # type: ignore[arg-type]
        float(np.median(each)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sims", type=int, default=2000)
    parser.add_argument("--n-pilots", type=int, default=200)
    parser.add_argument("--structures", default="HH,HL,LH,LL")
    parser.add_argument("--metrics", default="empirical_auc,sensitivity")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--pilots-only", action="store_true", help="only part 4")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cells: list[Cell] = []
    seed = args.seed
    if not args.pilots_only:
        print(
            "| structure | metric | J | K | G | factors | effect | predicted | as factorial "
            "| one pilot: median (IQR) | empirical (95% CI) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for metric in args.metrics.split(","):
            for structure in args.structures.split(","):
                found = run_structure(structure, metric, args.n_sims, args.n_pilots, seed)
                seed += 1
                cells += found
                for c in found:
                    print(
                        f"| {c.structure} | {c.metric} | {c.readers} | {c.cases} | "
                        f"{c.reader_groups} | {c.factors} | {c.effect:.4f} | {c.predicted:.3f} | "
                        + (f"{c.predicted_as_factorial:.3f}" if c.reader_groups > 1 else "-")
                        + f" | {c.pilot_predicted_median:.3f} ({c.pilot_predicted_iqr[0]:.3f}, "
                        f"{c.pilot_predicted_iqr[1]:.3f}) | {c.empirical:.3f} "
                        f"({c.empirical_ci[0]:.3f}, {c.empirical_ci[1]:.3f}) |",
                        flush=True,
                    )
        inside = sum(c.empirical_ci[0] <= c.predicted <= c.empirical_ci[1] for c in cells)
        gap = max(abs(c.predicted - c.empirical) for c in cells)
        print(
            f"\npredicted inside the empirical 95% CI in {inside} of {len(cells)} cells; "
            f"largest |predicted - empirical| = {gap:.3f}"
        )
    print(
        "\nSplit-plot pilots: power of a factorial study (J = 6, K = 100, RRRC) predicted from "
        "factorial pilots and from the same pilots cut into 2 reader groups\n"
    )
    print("| structure | from factorial pilots | from split-plot pilots | one split-plot pilot |")
    print("|---|---|---|---|")
    for index, structure in enumerate(args.structures.split(",")):
        from_factorial, from_split, one = split_plot_pilots(
            structure, args.n_pilots, args.seed + 1000 + index
        )
        print(f"| {structure} | {from_factorial:.3f} | {from_split:.3f} | {one:.3f} |", flush=True)
    if args.json:
        print(json.dumps([asdict(c) for c in cells], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
