"""The power planning page's computation: a pilot from its source, then the J x K power grid.

The pilot is the built-in Van Dyke study, an uploaded CSV or the study's own interim data
(:func:`studyplatform.dashboard.selectors.planning.interim_pilot`); its OR components and the
grid come from :mod:`analysis.power` (Hillis, Obuchowski and Berbaum 2011, as RJafroc's
``SsPowerGivenJK``). Every problem with the pilot or the plan is a ``ValueError`` whose message
the page shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from analysis.io import read_mrmc_csv
from analysis.mrmc.covariance import Metric
from analysis.power import PowerGrid, builtin_pilot, pilot_components, power_grid
from analysis.power.formulas import Factors
from studyplatform.dashboard.selectors.planning import interim_pilot
from studyplatform.studies.models import Study

GRID_COLUMNS = 20


@dataclass(frozen=True)
class Plan:
    """The grid and where its pilot came from, in words."""

    grid: PowerGrid
    pilot: str


def _upload_frame(text: str, name: str) -> Any:
    buffer = io.StringIO(text)
    try:
        return read_mrmc_csv(cast(str, buffer))
    except ValueError as error:
        # The reader names its input; here that is the upload, not an in-memory buffer.
        raise ValueError(str(error).replace(str(buffer), name)) from None


def case_steps(max_cases: int, reader_groups: int) -> list[int]:
    """About 20 numbers of cases up to ``max_cases``, multiples of the reader groups."""
    step = max(
        reader_groups, int(np.ceil(max_cases / GRID_COLUMNS / reader_groups)) * reader_groups
    )
    return list(range(step, max_cases + 1, step))


def plan_power(*, study: Study, data: dict[str, Any]) -> Plan:
    """The power grid for the planning form's cleaned ``data``.

    Raises
    ------
    ValueError
        A pilot that cannot be read or analysed (named problem), no finished reader for the
        study's interim data, or a plan the formulas refuse.
    """
    source = data["source"]
    metric = cast(Metric, data["metric"])
    if source == "study":
        interim = interim_pilot(study, finding=data["finding"])
        frame, metric = interim.frame, cast(Metric, interim.metric)
        pilot = (
            f"interim data of {study.slug}, finding type {interim.finding}, "
            f"{len(interim.readers)} complete-case reader(s)"
        )
    elif source == "upload":
        name = getattr(data.get("pilot"), "name", "the uploaded file")
        frame = _upload_frame(data["pilot_text"], name)
        pilot = f"uploaded pilot {name}"
    else:
        frame = builtin_pilot()
        pilot = "built-in pilot: Van Dyke et al. (1993), RJafroc dataset02"
    components = pilot_components(frame, metric=metric)
    groups = int(data["reader_groups"])
    grid = power_grid(
        components,
        readers=range(2, int(data["max_readers"]) + 1),
        cases=case_steps(int(data["max_cases"]), groups),
        effect=float(data["effect"]),
        alpha=float(data["alpha"]),
        factors=cast(Factors, data["factors"]),
        reader_groups=groups,
    )
    return Plan(grid=grid, pilot=pilot)
