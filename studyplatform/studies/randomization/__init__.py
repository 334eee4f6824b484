"""The randomizer: seeded, reproducible allocations for the study designs of DESIGN.md.

Pure Python and numpy, no Django: the web app turns studies into :class:`CaseInfo` values and
reader IDs, stores the returned :class:`Allocation` before reading starts, and keeps its
:meth:`Allocation.fingerprint` to prove later that the stored allocation is what the seed gives.

- :func:`crossover` - fully crossed, two (or ``k``) sessions with washout, arm sequences balanced
  per stratum (truth x site), per reader and per case (Williams sequences for ``k > 2``).
- :func:`sequential` - one session, each case read unaided, locked, then aided.
- :func:`split_plot` - reader groups x stratified case blocks, each group a crossover.
- :class:`ProspectiveAllocator` and :func:`assign_readers` - arrival-time permuted blocks of
  random size per site, then least-loaded reader choice.
- :func:`allocate` - dispatch by design name.

All randomness comes from :func:`~studyplatform.studies.randomization.streams.stream`, which
derives a PCG64 state from SHA-256 of the seed and purpose labels (documented there), so results
are identical across processes, platforms and numpy versions.
"""

from studyplatform.studies.randomization.designs import (
    DESIGNS,
    SplitPlotPlan,
    allocate,
    crossover,
    plan_split_plot,
    sequential,
    split_plot,
    williams_sequences,
)
from studyplatform.studies.randomization.model import (
    DEFAULT_ARMS,
    Allocation,
    AllocationRow,
    CaseInfo,
)
from studyplatform.studies.randomization.prospective import ProspectiveAllocator, assign_readers

__all__ = [
    "DEFAULT_ARMS",
    "DESIGNS",
    "Allocation",
    "AllocationRow",
    "CaseInfo",
    "ProspectiveAllocator",
    "SplitPlotPlan",
    "allocate",
    "assign_readers",
    "crossover",
    "plan_split_plot",
    "sequential",
    "split_plot",
    "williams_sequences",
]
