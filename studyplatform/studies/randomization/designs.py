"""The fixed-allocation designs: crossover with washout, sequential, split-plot.

Every function takes the study seed, the cases and the readers, sorts the inputs canonically (so
the order a query returns them in cannot change the allocation) and returns an
:class:`~studyplatform.studies.randomization.model.Allocation`.

References
----------
.. [1] Williams, E. J. (1949). Experimental designs balanced for the estimation of residual
   effects of treatments. *Australian Journal of Scientific Research, Series A*, 2(2), 149-168.
   https://doi.org/10.1071/CH9490149
.. [2] Chen, W., Gong, Q., & Gallas, B. D. (2018). Paired split-plot designs of multireader
   multicase studies. *Journal of Medical Imaging*, 5(3), 031410.
   https://doi.org/10.1117/1.JMI.5.3.031410
.. [3] Schalekamp, S., van Ginneken, B., Schaefer-Prokop, C. M., & Karssemeijer, N. (2014).
   Influence of study design in receiver operating characteristics studies: sequential versus
   independent reading. *Journal of Medical Imaging*, 1(1), 015501.
   https://doi.org/10.1117/1.JMI.1.1.015501
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from studyplatform.studies.randomization.model import (
    DEFAULT_ARMS,
    Allocation,
    AllocationRow,
    CaseInfo,
    validate_arms,
    validate_cases,
    validate_readers,
    validate_seed,
)
from studyplatform.studies.randomization.streams import below, permutation, stream

__all__ = [
    "DESIGNS",
    "SplitPlotPlan",
    "allocate",
    "crossover",
    "plan_split_plot",
    "sequential",
    "split_plot",
    "williams_sequences",
]

DESIGNS: tuple[str, ...] = ("crossover", "sequential", "split_plot", "prospective")
"""Design names as stored on a study. ``prospective`` has no fixed allocation (see
:class:`~studyplatform.studies.randomization.prospective.ProspectiveAllocator`)."""


def williams_sequences(k: int) -> tuple[tuple[int, ...], ...]:
    """Return Williams' (1949) arm sequences for ``k`` arms over ``k`` sessions.

    Each sequence lists, per session, the index of the arm read in that session. The set is
    balanced for first-order carryover: every arm is read in every session equally often, and
    every ordered pair of distinct arms follows one another equally often (once for even ``k``
    with ``k`` sequences; twice for odd ``k``, which needs ``2k`` sequences: the square and its
    mirror image) [1]_. For ``k = 2`` it is the classic AB/BA crossover.

    Parameters
    ----------
    k : int
        Number of arms, at least 2.

    Returns
    -------
    tuple of tuple of int
        ``k`` (even) or ``2k`` (odd) sequences of length ``k``; sequence 0 is ``0, 1, k-1, 2,
        k-2, ...`` and sequence ``i`` adds ``i`` modulo ``k``.
    """
    if k < 2:
        raise ValueError(f"a crossover needs at least two arms, got {k}")
    first = [0]
    low, high = 1, k - 1
    while len(first) < k:
        first.append(low)
        low += 1
        if len(first) < k:
            first.append(high)
            high -= 1
    rows = [tuple((arm + shift) % k for arm in first) for shift in range(k)]
    if k % 2:
        rows += [tuple(reversed(row)) for row in rows]
    return tuple(rows)


def _strata(cases: Sequence[CaseInfo]) -> list[list[int]]:
    """Group case indexes by stratum, strata in canonical (sorted) order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, case in enumerate(cases):
        groups.setdefault(case.stratum, []).append(index)
    return [groups[key] for key in sorted(groups)]


def _balanced_labels(
    seed: int, labels: Sequence[str], cases: Sequence[CaseInfo], q: int
) -> list[int]:
    """Give every case a label in ``0 .. q-1``, balanced within one per stratum and overall.

    The strata are visited in random order and the cases of each stratum in random order, and a
    counter running from a random start across all strata hands out ``counter mod q``. A
    stratum is a contiguous run of the counter, so its label counts differ by at most one, and
    which labels get a stratum's extra cases rotates from stratum to stratum, so the totals over
    all strata differ by at most one as well.
    """
    rng = stream(seed, *labels)
    strata = _strata(cases)
    counter = below(rng, q)
    result = [0] * len(cases)
    for s in permutation(rng, len(strata)):
        members = strata[s]
        for i in permutation(rng, len(members)):
            result[members[i]] = counter % q
            counter += 1
    return result


def _shuffled(seed: int, labels: Sequence[str], items: Sequence[str]) -> list[str]:
    return [items[i] for i in permutation(stream(seed, *labels), len(items))]


def _crossover_rows(
    seed: int,
    namespace: tuple[str, ...],
    cases: Sequence[CaseInfo],
    readers: Sequence[str],
    arms: Sequence[str],
) -> list[AllocationRow]:
    """Build the rows of a fully crossed crossover of ``readers`` x ``cases`` (see crossover)."""
    sequences = np.array(williams_sequences(len(arms)), dtype=np.int64)
    q = len(sequences)
    shuffled = _shuffled(seed, (*namespace, "readers"), readers)
    case_ids = [c.case_id for c in cases]
    n = len(cases)
    rows: list[AllocationRow] = []
    for start in range(0, len(shuffled), q):
        # Readers come in cohorts of q; a cohort shares one balanced labelling and reader j adds
        # j to it, so within a full cohort every case gets every sequence exactly once.
        base = np.array(
            _balanced_labels(seed, (*namespace, "sequences", str(start // q)), cases, q),
            dtype=np.int64,
        )
        for shift, reader in enumerate(shuffled[start : start + q]):
            arm_index = sequences[(base + shift) % q]  # shape (n, sessions)
            for session in range(len(arms)):
                session_arms = arm_index[:, session].tolist()
                order = permutation(stream(seed, *namespace, "order", reader, str(session + 1)), n)
                rows.extend(
                    AllocationRow(reader, case_ids[c], arms[session_arms[c]], session + 1, pos)
                    for pos, c in enumerate(order, start=1)
                )
    return rows


def crossover(
    *,
    seed: int,
    cases: Iterable[CaseInfo],
    readers: Iterable[str],
    arms: Iterable[str] = DEFAULT_ARMS,
) -> Allocation:
    """Allocate a fully crossed crossover with washout: every reader reads every case in every arm.

    With two arms there are two sessions (separated by the washout, which the app enforces). Per
    reader, each case follows one of the sequences AB (``arms[0]`` first) or BA; the cases of each
    stratum ``(truth_key, site)`` are split between the two sequences as evenly as possible
    (within one), so each session is a mix of aided and unaided reads whose stratum composition
    is the same in both arms - a reader cannot infer the arm from the session, and period
    (learning, fatigue) effects cancel between arms. When a stratum is odd, which sequence gets
    the extra case is random and rotates across strata, so each reader's totals are also within
    one.

    Readers are shuffled and taken in cohorts of two (of ``q`` in general, below); the second
    reader of a cohort gets the exact mirror of the first. So for every case the number of
    readers who read it aided first and unaided first differ by at most one (exactly zero with
    an even number of readers): the carryover of having seen the AI (or not) is balanced per case
    as well as per reader.

    With ``k > 2`` arms there are ``k`` sessions and the sequences are Williams' (1949) ``q = k``
    (even ``k``) or ``q = 2k`` (odd ``k``) carryover-balanced sequences [1]_; cases are spread over
    the ``q`` sequences within one per stratum, and cohorts have ``q`` readers. With an even ``k``
    every session then holds each arm within one per stratum.

    The reading order is shuffled independently per reader and session.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    cases : iterable of CaseInfo
        The cases; order does not matter.
    readers : iterable of str
        Reader IDs; order does not matter.
    arms : iterable of str, default ("unassisted", "assisted")
        The conditions; ``arms[0]`` is the reference.

    Returns
    -------
    Allocation
        ``len(readers) * len(cases) * len(arms)`` rows, sessions ``1 .. k``, step 1.
    """
    seed = validate_seed(seed)
    case_list = validate_cases(cases)
    reader_list = validate_readers(readers)
    arm_list = validate_arms(arms)
    rows = _crossover_rows(seed, ("crossover",), case_list, reader_list, arm_list)
    return Allocation("crossover", seed, arm_list, tuple(rows))


def sequential(
    *,
    seed: int,
    cases: Iterable[CaseInfo],
    readers: Iterable[str],
    arms: Iterable[str] = DEFAULT_ARMS,
) -> Allocation:
    """Allocate a sequential design: each case is read unaided, locked, then read with the AI.

    One session. Every reader reads every case; at each position the case is read ``len(arms)``
    times in a row, step ``i`` in ``arms[i - 1]`` (so ``arms[0]`` must be the unaided read; more
    arms model a stepwise reveal). The app locks each step before showing the next. The case
    order is shuffled per reader. There is nothing to balance: the arm order is fixed by design,
    which is this design's known weakness (the aided read is always second), bought for fewer
    sessions and, empirically, more statistical power [3]_.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    cases : iterable of CaseInfo
        The cases; order does not matter.
    readers : iterable of str
        Reader IDs; order does not matter.
    arms : iterable of str, default ("unassisted", "assisted")
        The reads per case, in the order they are made.

    Returns
    -------
    Allocation
        ``len(readers) * len(cases) * len(arms)`` rows, session 1, steps ``1 .. len(arms)``.
    """
    seed = validate_seed(seed)
    case_list = validate_cases(cases)
    reader_list = validate_readers(readers)
    arm_list = validate_arms(arms)
    rows: list[AllocationRow] = []
    for reader in reader_list:
        order = permutation(stream(seed, "sequential", "order", reader, "1"), len(case_list))
        for position, c in enumerate(order, start=1):
            rows.extend(
                AllocationRow(reader, case_list[c].case_id, arm, 1, position, step)
                for step, arm in enumerate(arm_list, start=1)
            )
    return Allocation("sequential", seed, arm_list, tuple(rows))


@dataclass(frozen=True, slots=True)
class SplitPlotPlan:
    """Which readers form each group and which cases each block holds; group g reads block g.

    Attributes
    ----------
    groups : tuple of tuple of str
        Reader IDs per group (each sorted); sizes differ by at most one.
    blocks : tuple of tuple of str
        Case IDs per block (each sorted); per stratum and overall, sizes differ by at most one.
    """

    groups: tuple[tuple[str, ...], ...]
    blocks: tuple[tuple[str, ...], ...]


def _validate_groups(groups: int, n_readers: int, n_cases: int) -> int:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if groups > n_readers:
        raise ValueError(f"fewer readers ({n_readers}) than groups ({groups})")
    if groups > n_cases:
        raise ValueError(f"fewer cases ({n_cases}) than groups ({groups})")
    return groups


def _fixed_groups(
    fixed: Sequence[Sequence[str]], readers: tuple[str, ...], groups: int
) -> tuple[tuple[str, ...], ...]:
    """Check that ``fixed`` splits ``readers`` into ``groups`` non-empty groups; sort each."""
    if len(fixed) != groups:
        raise ValueError(f"{len(fixed)} fixed groups given for {groups} groups")
    for number, members in enumerate(fixed, start=1):
        if not members:
            raise ValueError(f"group {number} has no reader")
    named = [reader for members in fixed for reader in members]
    if sorted(named) != list(readers):
        missing = sorted(set(readers) - set(named))
        extra = sorted(set(named) - set(readers))
        raise ValueError(
            "the fixed groups must hold every reader exactly once"
            + (f"; without a group: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(extra)}" if extra else "")
        )
    return tuple(tuple(sorted(members)) for members in fixed)


def plan_split_plot(
    *,
    seed: int,
    cases: Iterable[CaseInfo],
    readers: Iterable[str],
    groups: int,
    fixed_groups: Sequence[Sequence[str]] | None = None,
) -> SplitPlotPlan:
    """Randomize readers into groups and cases into stratified blocks for a split-plot design.

    Readers are shuffled and dealt round-robin into ``groups`` groups, unless ``fixed_groups``
    gives them (the study's coordinators formed the groups, e.g. by site); the case blocks are
    drawn from the seed either way, so group g's block does not depend on who is in it. Cases
    are dealt into as
    many blocks with the stratified counter of the crossover (random stratum order, random order
    within a stratum, a counter from a random start), so every block has the same case mix
    within one case per stratum.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    cases : iterable of CaseInfo
        The cases; at least ``groups`` of them.
    readers : iterable of str
        Reader IDs; at least ``groups`` of them.
    groups : int
        Number of reader groups (= case blocks), at least 1.
    fixed_groups : sequence of sequence of str, optional
        The reader IDs of each group, in group order: every reader exactly once, no group empty.

    Returns
    -------
    SplitPlotPlan
        The groups and blocks.
    """
    seed = validate_seed(seed)
    case_list = validate_cases(cases)
    reader_list = validate_readers(readers)
    groups = _validate_groups(groups, len(reader_list), len(case_list))
    labels = _balanced_labels(seed, ("split_plot", "blocks"), case_list, groups)
    if fixed_groups is not None:
        reader_groups = _fixed_groups(fixed_groups, reader_list, groups)
    else:
        shuffled = _shuffled(seed, ("split_plot", "groups"), reader_list)
        reader_groups = tuple(tuple(sorted(shuffled[g::groups])) for g in range(groups))
    return SplitPlotPlan(
        groups=reader_groups,
        blocks=tuple(
            tuple(c.case_id for c, label in zip(case_list, labels, strict=True) if label == g)
            for g in range(groups)
        ),
    )


def split_plot(
    *,
    seed: int,
    cases: Iterable[CaseInfo],
    readers: Iterable[str],
    groups: int,
    arms: Iterable[str] = DEFAULT_ARMS,
    fixed_groups: Sequence[Sequence[str]] | None = None,
) -> Allocation:
    """Allocate a split-plot design: each reader group reads its own case block in every arm.

    The groups and blocks come from :func:`plan_split_plot`; within each group the block is read
    with the crossover-with-washout scheme of :func:`crossover` (its own streams per group). The
    split-plot layout trades case throughput for reader time: each reader reads only ``1/G`` of
    the cases, and the MRMC analysis treats the groups as a split-plot factor [2]_.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    cases, readers
        As for :func:`crossover`; at least ``groups`` of each.
    groups : int
        Number of reader groups and case blocks.
    arms : iterable of str, default ("unassisted", "assisted")
        The conditions.
    fixed_groups : sequence of sequence of str, optional
        The readers of each group when they were formed by hand (:func:`plan_split_plot`).

    Returns
    -------
    Allocation
        Per group, ``len(group) * len(block) * len(arms)`` rows.
    """
    case_list = validate_cases(cases)
    plan = plan_split_plot(
        seed=seed, cases=case_list, readers=readers, groups=groups, fixed_groups=fixed_groups
    )
    arm_list = validate_arms(arms)
    by_id = {c.case_id: c for c in case_list}
    rows: list[AllocationRow] = []
    for g, (members, block) in enumerate(zip(plan.groups, plan.blocks, strict=True)):
        block_cases = [by_id[case_id] for case_id in block]
        rows += _crossover_rows(
            seed, ("split_plot", "group", str(g)), block_cases, members, arm_list
        )
    return Allocation("split_plot", seed, arm_list, tuple(rows))


def allocate(
    design: str,
    *,
    seed: int,
    cases: Iterable[CaseInfo],
    readers: Iterable[str],
    arms: Iterable[str] = DEFAULT_ARMS,
    groups: int | None = None,
    fixed_groups: Sequence[Sequence[str]] | None = None,
) -> Allocation:
    """Allocate a study by design name (the single entry point the web app calls).

    Parameters
    ----------
    design : str
        One of ``"crossover"``, ``"sequential"``, ``"split_plot"``.
    seed, cases, readers, arms
        As for the design functions.
    groups : int, optional
        Number of reader groups; required for ``"split_plot"`` and refused otherwise.
    fixed_groups : sequence of sequence of str, optional
        ``"split_plot"`` only: the readers of each group, formed by hand instead of drawn.

    Returns
    -------
    Allocation
        The design's allocation.

    Raises
    ------
    ValueError
        For an unknown design, ``"prospective"`` (allocated case by case on arrival), a missing
        or misplaced ``groups``, or invalid inputs.
    """
    if design == "prospective":
        raise ValueError(
            "the prospective design has no fixed allocation: use ProspectiveAllocator per case"
        )
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")
    if design == "split_plot":
        if groups is None:
            raise ValueError("the split_plot design needs the number of groups")
        return split_plot(
            seed=seed,
            cases=cases,
            readers=readers,
            groups=groups,
            arms=arms,
            fixed_groups=fixed_groups,
        )
    if groups is not None or fixed_groups is not None:
        raise ValueError(f"groups applies only to the split_plot design, not {design!r}")
    if design == "crossover":
        return crossover(seed=seed, cases=cases, readers=readers, arms=arms)
    return sequential(seed=seed, cases=cases, readers=readers, arms=arms)
