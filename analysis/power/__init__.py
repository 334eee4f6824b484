"""Power and sample size of two-treatment MRMC studies from a pilot (OR method).

:func:`pilot_components` takes the OR variance components of a pilot study
(:mod:`analysis.power.pilot`), :func:`power_given` gives the power of a pivotal study of ``J``
readers and ``K`` cases and :func:`cases_for_power` the smallest ``K`` reaching a target power
(:mod:`analysis.power.formulas`: Hillis, Obuchowski and Berbaum 2011, as RJafroc 2.1.3
``SsPowerGivenJK`` and ``SsSampleSizeKGivenJ``; split-plot designs too); :func:`power_grid`
gives a readers x cases grid and its heat map (:mod:`analysis.power.grid`) for the planning
page.
"""

from analysis.power.formulas import (
    FACTORS,
    MAX_CASES,
    cases_for_power,
    check_plan,
    power_arrays,
    power_given,
)
from analysis.power.grid import BUILTIN_PILOT, PowerGrid, builtin_pilot, power_grid
from analysis.power.pilot import PowerComponents, pilot_components, pilot_components_design
from analysis.power.results import PowerResult, SampleSizeResult

__all__ = [
    "BUILTIN_PILOT",
    "FACTORS",
    "MAX_CASES",
    "PowerComponents",
    "PowerGrid",
    "PowerResult",
    "SampleSizeResult",
    "builtin_pilot",
    "cases_for_power",
    "check_plan",
    "pilot_components",
    "pilot_components_design",
    "power_arrays",
    "power_given",
    "power_grid",
]
