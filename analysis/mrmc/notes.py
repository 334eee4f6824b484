"""Notes on an OR analysis: reads missing from a factorial design, results without uncertainty.

Notes are plain sentences carried in :attr:`analysis.mrmc.results.ORResult.notes` (the
``notes`` list of the JSON) so that a reader of the report sees why a number is degenerate.
"""

from __future__ import annotations

import math

from analysis.io import MRMCDesign
from analysis.mrmc.results import Difference, GlobalTest, SingleTreatment


def design_notes(design: MRMCDesign) -> tuple[str, ...]:
    """A note when reads are missing from a design called factorial."""
    if design.design != "factorial" or design.fully_paired:
        return ()
    return (
        f"factorial (partially paired): {design.n_missing} of {design.observed.size} "
        "reader x treatment x case reads are missing; analysed as MRMCaov's partially paired "
        "design (each reader's metric from the cases it read)",
    )


def degenerate_notes(
    global_test: GlobalTest,
    differences: list[Difference],
    single: dict[str, SingleTreatment],
) -> tuple[str, ...]:
    """Notes for results that carry no uncertainty: a zero standard error or an undefined test.

    Identical ratings, or readers who all agree perfectly, make variances zero; the intervals
    then have zero width and must not be read as a precise estimate.
    """
    notes = []
    if not math.isfinite(global_test.statistic):
        notes.append(
            f"global test undefined ({global_test.statistic_name} = {global_test.statistic}): "
            "its denominator is 0, the data show no reader or case variation"
        )
    for d in differences:
        if not d.se > 0.0:
            notes.append(
                f"difference {d.pair}: standard error {d.se:g}, its interval has zero width "
                "(no reader or case variation to estimate it)"
            )
    for name, value in single.items():
        if not value.se > 0.0:
            notes.append(
                f"treatment {name}: standard error {value.se:g}, its interval has zero width "
                "(no reader or case variation to estimate it)"
            )
    return tuple(notes)
