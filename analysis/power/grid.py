"""A readers x cases power grid for planning, its plotly heat map, and the built-in pilot.

:func:`power_grid` evaluates :func:`analysis.power.formulas.power_arrays` on every pair of a
range of readers and a range of cases in one vectorised call (a 30 x 50 grid takes well under a
millisecond). :func:`builtin_pilot` is the Van Dyke study (RJafroc ``dataset02``, MRMCaov
``VanDyke``; ``vandyke.csv`` here is ``tests/data/vandyke.csv``), a pilot to plan with before any
data of one's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from analysis.power.formulas import Factors, check_plan, power_arrays
from analysis.power.pilot import PowerComponents

if TYPE_CHECKING:
    import pandas as pd

BUILTIN_PILOT = Path(__file__).with_name("vandyke.csv")
MAX_GRID_CELLS = 20_000


def builtin_pilot() -> pd.DataFrame:
    """The Van Dyke study (2 treatments, 5 readers, 114 cases) as an MRMC frame."""
    from analysis.io import read_mrmc_csv

    return read_mrmc_csv(BUILTIN_PILOT)


@dataclass(frozen=True)
class PowerGrid:
    """Power for each number of readers (rows) and of cases (columns)."""

    readers: tuple[int, ...]
    cases: tuple[int, ...]
    power: NDArray[np.float64]
    effect: float
    alpha: float
    factors: str
    reader_groups: int
    components: PowerComponents

    def figure(self) -> dict[str, Any]:
        """A plotly heat map (as a plain figure dict) with the 0.8 power contour marked."""
        text = [[f"{p:.2f}" for p in row] for row in self.power]
        split = "" if self.reader_groups == 1 else f", {self.reader_groups} reader groups"
        return {
            "data": [
                {
                    "type": "heatmap",
                    "x": list(self.cases),
                    "y": list(self.readers),
                    "z": self.power.round(4).tolist(),
                    "text": text,
                    "zmin": 0.0,
                    "zmax": 1.0,
                    "colorscale": "Viridis",
                    "colorbar": {"title": {"text": "power"}},
                    "hovertemplate": "%{y} readers, %{x} cases: power %{text}<extra></extra>",
                },
                {
                    "type": "contour",
                    "x": list(self.cases),
                    "y": list(self.readers),
                    "z": self.power.round(4).tolist(),
                    "contours": {
                        "start": 0.8,
                        "end": 0.8,
                        "size": 0.1,
                        "coloring": "none",
                        "showlabels": True,
                    },
                    "line": {"color": "white", "width": 2},
                    "showscale": False,
                    "hoverinfo": "skip",
                    "name": "power 0.8",
                },
            ],
            "layout": {
                "title": {
                    "text": f"Power ({self.factors}, effect {self.effect:g} in "
                    f"{self.components.metric}, alpha {self.alpha:g}{split})"
                },
                "xaxis": {"title": {"text": "cases"}},
                "yaxis": {"title": {"text": "readers"}, "dtick": 1},
                "height": 520,
            },
        }

    def rows(self) -> list[tuple[int, list[float]]]:
        """(readers, powers over the cases) per row, for a table."""
        return [(j, self.power[i].tolist()) for i, j in enumerate(self.readers)]


def power_grid(
    components: PowerComponents,
    *,
    readers: range | list[int] | tuple[int, ...],
    cases: range | list[int] | tuple[int, ...],
    effect: float,
    alpha: float = 0.05,
    factors: Factors = "RRRC",
    reader_groups: int = 1,
) -> PowerGrid:
    """Power for every number of readers in ``readers`` and of cases in ``cases``.

    With reader groups (split-plot), readers that are not a multiple of the groups and cases not
    a multiple of them are left out of the grid. Formulas in :mod:`analysis.power.formulas`.

    Raises
    ------
    ValueError
        On a bad effect, alpha, factors or groups (:func:`analysis.power.check_plan`), readers
        below 2, cases below ``2 G``, an empty grid or one of more than 20,000 cells.
    """
    check_plan(
        readers=2 * reader_groups,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    js = tuple(int(j) for j in readers if j % reader_groups == 0)
    ks = tuple(int(k) for k in cases if k % reader_groups == 0)
    if not js or not ks:
        raise ValueError(
            "the grid is empty: give numbers of readers and of cases that are multiples of the "
            "number of reader groups"
        )
    if min(js) < 2 or min(ks) < 2 * reader_groups:
        raise ValueError(
            f"the grid needs at least 2 readers and {2 * reader_groups} cases per study"
        )
    if len(js) * len(ks) > MAX_GRID_CELLS:
        raise ValueError(f"the grid has {len(js) * len(ks)} cells, at most {MAX_GRID_CELLS}")
    power, *_ = power_arrays(
        components,
        readers=np.asarray(js)[:, None],
        cases=np.asarray(ks)[None, :],
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
    )
    return PowerGrid(
        readers=js,
        cases=ks,
        power=power,
        effect=effect,
        alpha=alpha,
        factors=factors,
        reader_groups=reader_groups,
        components=components,
    )
