"""What the ``validate_*.py`` simulation scripts share: Wilson intervals, null Roe-Metz
studies, and the pooled summary and report of their cells.

A module of the scripts' folder, imported by name (``import validation``): the folder of a
script run as ``python benchmarks/validate_x.py`` is first on ``sys.path``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from analysis import standalone
from analysis.simulate import simulate_roe_metz

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analysis.simulate import RoeMetzParams


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of the proportion ``successes / n`` (NaN when ``n == 0``)."""
    proportion = standalone.wilson(successes, n)
    return proportion.ci_lower, proportion.ci_upper


def null_study(
    params: RoeMetzParams, mu: float, n_readers: int, n_per_class: int, rng: np.random.Generator
) -> pd.DataFrame:
    """A fully crossed Roe-Metz study with the same ``mu`` in both treatments (the null)."""
    return simulate_roe_metz(
        n_readers=n_readers,
        n_positive=n_per_class,
        n_negative=n_per_class,
        mu=mu,
        structure=params,
        seed=rng,
    )


def pooled_summary(cells: Sequence[Any], weight: str, *rates: str) -> dict[str, Any]:
    """``n_datasets`` (the cells' ``n_sims``) and each rate as ``pooled_<rate>``: its mean over
    the cells weighted by the cell field ``weight``, the number of datasets the rate is over."""
    total = sum(getattr(c, weight) for c in cells)
    summary: dict[str, Any] = {"n_datasets": sum(c.n_sims for c in cells)}
    for rate in rates:
        summary[f"pooled_{rate}"] = (
            sum(getattr(c, rate) * getattr(c, weight) for c in cells) / total
        )
    return summary


def print_report(cells: Sequence[Any], summary: Mapping[str, Any], as_json: bool) -> None:
    """The cells (dataclasses) and the pooled summary as one JSON object, or the summary as a
    line of ``key=value`` (the cells are printed as they finish)."""
    if as_json:
        print(json.dumps({"cells": [asdict(c) for c in cells], **summary}, indent=1))
    else:
        print(
            " ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()
            )
        )
