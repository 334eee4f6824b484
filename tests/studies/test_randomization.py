"""Properties of the randomizer: balance, completeness, reproducibility, validation.

Pure: no database, no Django settings (run with ``-p no:django`` if settings are unavailable).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studyplatform.studies.randomization import (
    DEFAULT_ARMS,
    Allocation,
    AllocationRow,
    CaseInfo,
    ProspectiveAllocator,
    allocate,
    assign_readers,
    crossover,
    plan_split_plot,
    sequential,
    split_plot,
    williams_sequences,
)
from studyplatform.studies.randomization.streams import below, permutation, stream

PROPERTY = settings(max_examples=150, deadline=None)

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEF0123456789-_é"
ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=6)
seeds = st.integers(min_value=0, max_value=2**64)
arm_sets = st.sampled_from([DEFAULT_ARMS, ("a", "b", "c"), ("a", "b", "c", "d")])


@st.composite
def case_lists(draw: st.DrawFn, min_size: int = 1, max_size: int = 40) -> list[CaseInfo]:
    """Cases with unique IDs spread over a few sites and truth keys (some strata odd, some 1)."""
    case_ids = draw(st.lists(ids, min_size=min_size, max_size=max_size, unique=True))
    sites = st.sampled_from(["north", "south", "east"])
    truths = st.sampled_from(["positive", "negative", "(1, 0)"])
    return [CaseInfo(c, draw(sites), draw(truths)) for c in case_ids]


readers_lists = st.lists(ids, min_size=1, max_size=7, unique=True)


def fixed_cases(n: int = 30) -> list[CaseInfo]:
    return [
        CaseInfo(f"case-{i:03d}", ["north", "south", "east"][i % 3], ["pos", "neg"][i % 7 < 3])
        for i in range(n)
    ]


def within_one(counts: Sequence[int]) -> bool:
    return max(counts) - min(counts) <= 1


def check_crossover(
    rows: Sequence[AllocationRow],
    cases: Sequence[CaseInfo],
    readers: Sequence[str],
    arms: Sequence[str],
) -> None:
    """Assert every invariant of a fully crossed crossover of ``readers`` x ``cases``."""
    k, n = len(arms), len(cases)
    sequences = williams_sequences(k)
    strata = {c.case_id: c.stratum for c in cases}
    assert len(rows) == len(readers) * n * k
    # Every (reader, case, arm) exactly once.
    triples = Counter((r.reader, r.case_id, r.arm) for r in rows)
    assert set(triples) == {(r, c.case_id, a) for r in readers for c in cases for a in arms}
    assert set(triples.values()) == {1}
    assert {r.step for r in rows} == {1}
    assert {r.session for r in rows} == set(range(1, k + 1))
    # Per reader and session: every case once, positions a permutation of 1..n.
    by_session: dict[tuple[str, int], list[AllocationRow]] = defaultdict(list)
    for row in rows:
        by_session[row.reader, row.session].append(row)
    assert len(by_session) == len(readers) * k
    for session_rows in by_session.values():
        assert sorted(r.position for r in session_rows) == list(range(1, n + 1))
        assert sorted(r.case_id for r in session_rows) == sorted(c.case_id for c in cases)
    # Each reader's arm sequence per case is a Williams sequence.
    arm_index = {a: i for i, a in enumerate(arms)}
    sequence_of: dict[tuple[str, str], int] = {}
    seq_by_reader_case: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * k)
    for row in rows:
        seq_by_reader_case[row.reader, row.case_id][row.session - 1] = arm_index[row.arm]
    for key, seq in seq_by_reader_case.items():
        assert tuple(seq) in sequences
        sequence_of[key] = sequences.index(tuple(seq))
    q = len(sequences)
    for reader in readers:
        # Per stratum and overall, the cases are spread over the sequences within one.
        per_stratum: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        for c in cases:
            per_stratum[c.stratum][sequence_of[reader, c.case_id]] += 1
        for counter in per_stratum.values():
            assert within_one([counter[s] for s in range(q)])
        total = Counter(sequence_of[reader, c.case_id] for c in cases)
        assert within_one([total[s] for s in range(q)])
        if k % 2 == 0:
            # Even k: in every session each arm is within one per stratum.
            for session in range(1, k + 1):
                arm_counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
                for row in by_session[reader, session]:
                    arm_counts[strata[row.case_id]][row.arm] += 1
                for arm_counter in arm_counts.values():
                    assert within_one([arm_counter[a] for a in arms])
    # Per case, across readers, the sequences are within one: with two arms, the number of
    # readers who read the case aided first and unaided first differ by at most one.
    for c in cases:
        per_case = Counter(sequence_of[r, c.case_id] for r in readers)
        assert within_one([per_case[s] for s in range(q)])


# --- streams ------------------------------------------------------------------------------------


def pcg64_reference(state: int, inc: int, count: int) -> list[int]:
    """PCG XSL-RR 128/64 (O'Neill 2014) in plain Python: pins numpy's PCG64 raw stream."""
    multiplier = 0x2360ED051FC65DA44385DF649FCCF645
    out = []
    for _ in range(count):
        state = (state * multiplier + inc) % 2**128
        xored = ((state >> 64) ^ state) % 2**64
        rot = state >> 122
        out.append(((xored >> rot) | (xored << ((64 - rot) % 64))) % 2**64)
    return out


def test_stream_state_is_sha256_of_seed_and_labels_and_matches_reference_pcg64():
    def enc(s: str) -> bytes:
        return len(s.encode()).to_bytes(8, "big") + s.encode()

    digest = hashlib.sha256(
        b"studyplatform.randomization/v1" + enc("42") + enc("crossover") + enc("r1")
    ).digest()
    state = int.from_bytes(digest[:16], "big")
    inc = int.from_bytes(digest[16:], "big") | 1
    generator = stream(42, "crossover", "r1")
    assert generator.random_raw(5).tolist() == pcg64_reference(state, inc, 5)


def test_stream_golden_values_never_change():
    assert stream(20261128, "golden").random_raw(2).tolist() == [
        8549534525035120911,
        6299020383923276022,
    ]


def test_streams_with_different_labels_differ():
    draws = {tuple(stream(1, *labels).random_raw(2).tolist()) for labels in [(), ("a",), ("a", "")]}
    assert len(draws) == 3
    # Length-prefixed labels: ("ab", "c") and ("a", "bc") are different streams.
    assert stream(1, "ab", "c").random_raw() != stream(1, "a", "bc").random_raw()


@PROPERTY
@given(seed=seeds, n=st.integers(0, 50), bound=st.integers(1, 2**64 - 1))
def test_permutation_and_below(seed: int, n: int, bound: int) -> None:
    assert sorted(permutation(stream(seed, "p"), n)) == list(range(n))
    assert 0 <= below(stream(seed, "b"), bound) < bound


# --- Williams sequences ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(2, 9))
def test_williams_sequences_are_latin_and_carryover_balanced(k: int) -> None:
    sequences = williams_sequences(k)
    assert len(sequences) == (k if k % 2 == 0 else 2 * k)
    for seq in sequences:
        assert sorted(seq) == list(range(k))
    for period in range(k):
        column = Counter(seq[period] for seq in sequences)
        assert set(column.values()) == {len(sequences) // k}
    pairs = Counter((seq[t], seq[t + 1]) for seq in sequences for t in range(k - 1))
    assert len(pairs) == k * (k - 1)
    assert set(pairs.values()) == {1 if k % 2 == 0 else 2}


def test_williams_two_arms_is_ab_ba():
    assert williams_sequences(2) == ((0, 1), (1, 0))


# --- crossover ----------------------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, cases=case_lists(), readers=readers_lists, arms=arm_sets)
def test_crossover_invariants(
    seed: int, cases: list[CaseInfo], readers: list[str], arms: tuple[str, ...]
) -> None:
    allocation = crossover(seed=seed, cases=cases, readers=readers, arms=arms)
    assert allocation.design == "crossover"
    assert allocation.arms == arms
    check_crossover(allocation.rows, cases, readers, arms)


@PROPERTY
@given(seed=seeds, cases=case_lists(), readers=st.lists(ids, min_size=1, max_size=9, unique=True))
def test_crossover_two_arms_per_case_aided_first_balanced_exactly_with_even_readers(
    seed: int, cases: list[CaseInfo], readers: list[str]
) -> None:
    rows = crossover(seed=seed, cases=cases, readers=readers).rows
    aided_first = Counter(r.case_id for r in rows if r.session == 1 and r.arm == "assisted")
    for c in cases:
        first = aided_first[c.case_id]
        assert abs(first - (len(readers) - first)) == len(readers) % 2


@PROPERTY
@given(seed=seeds, cases=case_lists(), readers=readers_lists, data=st.data())
def test_crossover_is_deterministic_and_independent_of_input_order(
    seed: int, cases: list[CaseInfo], readers: list[str], data: st.DataObject
) -> None:
    first = crossover(seed=seed, cases=cases, readers=readers)
    shuffled_cases = data.draw(st.permutations(cases))
    shuffled_readers = data.draw(st.permutations(readers))
    again = crossover(seed=seed, cases=shuffled_cases, readers=tuple(shuffled_readers))
    assert again == first
    assert again.fingerprint() == first.fingerprint()


def test_crossover_different_seeds_give_different_allocations():
    cases, readers = fixed_cases(), ["r1", "r2", "r3"]
    fingerprints = {
        crossover(seed=s, cases=cases, readers=readers).fingerprint() for s in range(25)
    }
    assert len(fingerprints) == 25


def test_crossover_odd_strata_extras_alternate_within_a_reader():
    # Five strata of three cases: each reader's 15 cases split 7/8, never 5/10.
    cases = [CaseInfo(f"c{s}{i}", f"site{s}", "pos") for s in range(5) for i in range(3)]
    for seed in range(20):
        allocation = crossover(seed=seed, cases=cases, readers=["r1", "r2"])
        for reader in ("r1", "r2"):
            aided = sum(
                1 for r in allocation.for_reader(reader) if r.session == 1 and r.arm == "assisted"
            )
            assert aided in (7, 8)


def test_crossover_side_getting_a_strata_extra_case_is_random():
    cases = [CaseInfo(f"c{i}", "north", "pos") for i in range(3)]
    aided_first = {
        sum(
            1
            for r in crossover(seed=seed, cases=cases, readers=["r1"]).rows
            if r.session == 1 and r.arm == "assisted"
        )
        for seed in range(40)
    }
    assert aided_first == {1, 2}


def test_crossover_reading_order_differs_between_sessions_and_readers():
    allocation = crossover(seed=3, cases=fixed_cases(), readers=["r1", "r2"])
    orders = {
        (reader, session): tuple(
            r.case_id for r in allocation.for_reader(reader) if r.session == session
        )
        for reader in ("r1", "r2")
        for session in (1, 2)
    }
    assert len(set(orders.values())) == 4


def test_allocation_rebuilt_from_rows_in_any_order_has_the_same_fingerprint():
    allocation = crossover(seed=11, cases=fixed_cases(12), readers=["r1", "r2"])
    rows = list(allocation.rows)
    random.Random(0).shuffle(rows)
    rebuilt = Allocation("crossover", 11, ("unassisted", "assisted"), tuple(rows))
    assert rebuilt == allocation
    assert rebuilt.fingerprint() == allocation.fingerprint()
    changed = rows.copy()
    changed[0] = AllocationRow(
        changed[0].reader, changed[0].case_id, changed[0].arm, changed[0].session, 99
    )
    assert Allocation("crossover", 11, DEFAULT_ARMS, tuple(changed)).fingerprint() != (
        allocation.fingerprint()
    )


def test_golden_fingerprints_never_change():
    # Regenerating a locked study's allocation must give these bits forever (any change here is
    # a break of reproducibility, not a refactoring).
    cases = [
        CaseInfo(f"case-{i}", ["north", "south"][i % 2], ["positive", "negative"][i % 3 == 0])
        for i in range(8)
    ]
    readers = ["r1", "r2", "r3"]
    expected = {
        "crossover": "d5bc7800ab3e38e6c671d7a26aa1e3070cfa6969bdecbda94b863924d38516b1",
        "sequential": "abadcfdddd0208fa8ea3dd5a3590afd8c0fa61fbf9ae71fb46a5ac042599495d",
        "split_plot": "be8664422e035ced0fdbba6ad001b0be7c569053721c1ca685e1171828ce7df7",
    }
    for design, fingerprint in expected.items():
        groups = 2 if design == "split_plot" else None
        allocation = allocate(design, seed=20261128, cases=cases, readers=readers, groups=groups)
        assert allocation.fingerprint() == fingerprint, design
    three_arms = crossover(seed=20261128, cases=cases, readers=readers, arms=("a", "b", "c"))
    assert three_arms.fingerprint() == (
        "23c0d3a4a0b89aac6d43ccc361c50c904c6205a8ffad319f516d4886a0844ac9"
    )
    assert ProspectiveAllocator(20261128).sequence("north", 6) == (
        "assisted",
        "unassisted",
        "unassisted",
        "assisted",
        "unassisted",
        "assisted",
    )


@pytest.mark.slow
def test_crossover_at_scale_50_readers_5000_cases():
    cases = [
        CaseInfo(f"c{i:05d}", f"site{i % 4}", "positive" if i % 5 == 0 else "negative")
        for i in range(5000)
    ]
    readers = [f"reader{i:02d}" for i in range(50)]
    allocation = crossover(seed=1, cases=cases, readers=readers)
    assert len(allocation.rows) == 500_000
    aided_first = Counter(
        r.case_id for r in allocation.rows if r.session == 1 and r.arm == "assisted"
    )
    assert set(aided_first.values()) == {25}


# --- sequential ---------------------------------------------------------------------------------


@PROPERTY
@given(seed=seeds, cases=case_lists(), readers=readers_lists, arms=arm_sets)
def test_sequential_reads_each_case_in_arm_order_at_one_position(
    seed: int, cases: list[CaseInfo], readers: list[str], arms: tuple[str, ...]
) -> None:
    allocation = sequential(seed=seed, cases=cases, readers=readers, arms=arms)
    rows = allocation.rows
    n, k = len(cases), len(arms)
    assert len(rows) == len(readers) * n * k
    assert {r.session for r in rows} == {1}
    for reader in readers:
        mine = allocation.for_reader(reader)
        # Canonical order is the reading order: position by position, steps 1..k in arm order.
        assert [(r.position, r.step, r.arm) for r in mine] == [
            (p, s, arms[s - 1]) for p in range(1, n + 1) for s in range(1, k + 1)
        ]
        for p in range(n):
            assert len({r.case_id for r in mine[p * k : (p + 1) * k]}) == 1
        assert sorted(r.case_id for r in mine if r.step == 1) == sorted(c.case_id for c in cases)
    again = sequential(seed=seed, cases=cases[::-1], readers=readers[::-1], arms=arms)
    assert again.fingerprint() == allocation.fingerprint()


def test_sequential_orders_differ_between_readers():
    allocation = sequential(seed=5, cases=fixed_cases(), readers=["r1", "r2"])
    orders = [
        tuple(r.case_id for r in allocation.for_reader(reader) if r.step == 1)
        for reader in ("r1", "r2")
    ]
    assert orders[0] != orders[1]


# --- split-plot ---------------------------------------------------------------------------------


@st.composite
def split_plot_inputs(draw: st.DrawFn) -> tuple[list[CaseInfo], list[str], int]:
    groups = draw(st.integers(1, 4))
    cases = draw(case_lists(min_size=groups))
    readers = draw(st.lists(ids, min_size=groups, max_size=9, unique=True))
    return cases, readers, groups


@PROPERTY
@given(seed=seeds, inputs=split_plot_inputs(), arms=arm_sets)
def test_split_plot_invariants(
    seed: int, inputs: tuple[list[CaseInfo], list[str], int], arms: tuple[str, ...]
) -> None:
    cases, readers, groups = inputs
    plan = plan_split_plot(seed=seed, cases=cases, readers=readers, groups=groups)
    assert len(plan.groups) == len(plan.blocks) == groups
    assert sorted(r for g in plan.groups for r in g) == sorted(readers)
    assert sorted(c for b in plan.blocks for c in b) == sorted(c.case_id for c in cases)
    assert within_one([len(g) for g in plan.groups])
    assert within_one([len(b) for b in plan.blocks])
    stratum_of = {c.case_id: c.stratum for c in cases}
    for stratum in set(stratum_of.values()):
        counts = [sum(1 for c in block if stratum_of[c] == stratum) for block in plan.blocks]
        assert within_one(counts)

    allocation = split_plot(seed=seed, cases=cases, readers=readers, groups=groups, arms=arms)
    assert allocation.design == "split_plot"
    by_id = {c.case_id: c for c in cases}
    for members, block in zip(plan.groups, plan.blocks, strict=True):
        group_rows = [r for r in allocation.rows if r.reader in members]
        assert {r.case_id for r in group_rows} == set(block)
        check_crossover(group_rows, [by_id[c] for c in block], members, arms)
    assert len(allocation.rows) == sum(
        len(g) * len(b) * len(arms) for g, b in zip(plan.groups, plan.blocks, strict=True)
    )
    again = split_plot(
        seed=seed, cases=cases[::-1], readers=readers[::-1], groups=groups, arms=arms
    )
    assert again.fingerprint() == allocation.fingerprint()


@PROPERTY
@given(seed=seeds, inputs=split_plot_inputs(), arms=arm_sets, data=st.data())
def test_split_plot_keeps_groups_formed_by_hand_and_draws_the_same_blocks(
    seed: int,
    inputs: tuple[list[CaseInfo], list[str], int],
    arms: tuple[str, ...],
    data: st.DataObject,
) -> None:
    cases, readers, groups = inputs
    # Any split of the readers into non-empty groups: the first ``groups`` readers seed them.
    order = data.draw(st.permutations(readers))
    fixed: list[list[str]] = [[reader] for reader in order[:groups]]
    for reader in order[groups:]:
        fixed[data.draw(st.integers(0, groups - 1))].append(reader)
    drawn = plan_split_plot(seed=seed, cases=cases, readers=readers, groups=groups)
    plan = plan_split_plot(
        seed=seed, cases=cases, readers=readers, groups=groups, fixed_groups=fixed
    )
    assert plan.groups == tuple(tuple(sorted(g)) for g in fixed)
    assert plan.blocks == drawn.blocks
    allocation = split_plot(
        seed=seed, cases=cases, readers=readers, groups=groups, arms=arms, fixed_groups=fixed
    )
    for members, block in zip(plan.groups, plan.blocks, strict=True):
        assert {r.case_id for r in allocation.rows if r.reader in members} == set(block)
    same = split_plot(
        seed=seed,
        cases=cases,
        readers=readers,
        groups=groups,
        arms=arms,
        fixed_groups=[list(g) for g in drawn.groups],
    )
    assert (
        same.fingerprint()
        == split_plot(
            seed=seed, cases=cases, readers=readers, groups=groups, arms=arms
        ).fingerprint()
    )


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        ([["r1", "r2"]], "1 fixed groups given for 2 groups"),
        ([["r1", "r2", "r3"], []], "group 2 has no reader"),
        ([["r1"], ["r2"]], "without a group: r3"),
        ([["r1", "r2"], ["r3", "r9"]], "unknown: r9"),
        ([["r1", "r2"], ["r2", "r3"]], "every reader exactly once"),
    ],
)
def test_split_plot_refuses_groups_that_do_not_split_the_readers(fixed, message) -> None:
    cases = [CaseInfo(f"c{i}", "s", "pos" if i % 2 else "neg") for i in range(4)]
    with pytest.raises(ValueError, match=message):
        plan_split_plot(
            seed=1, cases=cases, readers=["r1", "r2", "r3"], groups=2, fixed_groups=fixed
        )


# --- prospective --------------------------------------------------------------------------------

block_size_sets = st.sampled_from([None, (2,), (4,), (2, 4), (2, 4, 6), (6, 8, 10)])


@PROPERTY
@given(seed=seeds, site=ids, sizes=block_size_sets, three_arms=st.booleans(), n=st.integers(1, 150))
def test_prospective_blocks_balance_and_bounded_imbalance(
    seed: int, site: str, sizes: tuple[int, ...] | None, three_arms: bool, n: int
) -> None:
    arms = ("a", "b", "c") if three_arms else DEFAULT_ARMS
    if sizes is not None:
        sizes = tuple(s * len(arms) // 2 for s in sizes)
    allocator = ProspectiveAllocator(seed, arms, sizes)
    largest = max(allocator.block_sizes)
    sequence = allocator.sequence(site, n)
    # Within every completed block, arms are exactly balanced; block sizes come from the set.
    start, block = 0, 0
    while True:
        arms_of_block = allocator.block_arms(site, block)
        assert len(arms_of_block) in allocator.block_sizes
        assert len(set(Counter(arms_of_block).values())) == 1
        assert set(arms_of_block) == set(arms)
        assert allocator.locate(site, start) == (block, start)
        if start + len(arms_of_block) > n:
            break
        assert sequence[start : start + len(arms_of_block)] == arms_of_block
        start, block = start + len(arms_of_block), block + 1
    # At every prefix the imbalance is at most half the largest block (two arms), in general
    # max(block) / k.
    counts: Counter[str] = Counter()
    for arm in sequence:
        counts[arm] += 1
        assert max(counts[a] for a in arms) - min(counts[a] for a in arms) <= largest // len(arms)
    # Random access equals the sequence, in any call order, on a fresh allocator too.
    indexes = list(range(n))
    random.Random(seed).shuffle(indexes)
    fresh = ProspectiveAllocator(seed, arms, sizes)
    assert [fresh.arm_for(site, i) for i in indexes] == [sequence[i] for i in indexes]


@PROPERTY
@given(seed=seeds, n=st.integers(1, 60))
def test_prospective_sites_are_independent(seed: int, n: int) -> None:
    alone = ProspectiveAllocator(seed).sequence("north", n)
    busy = ProspectiveAllocator(seed)
    for i in range(n):
        busy.arm_for("south", i)
        busy.arm_for("east", 2 * i)
    assert tuple(busy.arm_for("north", i) for i in range(n)) == alone


def test_prospective_block_sizes_vary_and_seeds_differ():
    allocator = ProspectiveAllocator(7)
    sizes = {len(allocator.block_arms("north", b)) for b in range(60)}
    assert sizes == {2, 4, 6}
    sequences = {ProspectiveAllocator(s).sequence("north", 40) for s in range(20)}
    assert len(sequences) == 20


@pytest.mark.parametrize(
    ("arms", "sizes", "message"),
    [
        (DEFAULT_ARMS, (3,), "not a positive multiple"),
        (DEFAULT_ARMS, (0, 2), "not a positive multiple"),
        (DEFAULT_ARMS, (), "empty"),
        (("a", "b", "c"), (2, 4), "not a positive multiple"),
        (("a",), None, "at least two arms"),
    ],
)
def test_prospective_rejects_bad_configuration(arms, sizes, message):
    with pytest.raises(ValueError, match=message):
        ProspectiveAllocator(1, arms, sizes)


def test_prospective_rejects_bad_site_and_index():
    allocator = ProspectiveAllocator(1)
    with pytest.raises(ValueError, match="index"):
        allocator.arm_for("north", -1)
    with pytest.raises(ValueError, match="site"):
        allocator.arm_for("", 0)


@PROPERTY
@given(
    seed=seeds,
    readers=st.lists(ids, min_size=1, max_size=8, unique=True),
    data=st.data(),
    n_cases=st.integers(1, 40),
)
def test_assign_readers_keeps_workloads_within_one(
    seed: int, readers: list[str], data: st.DataObject, n_cases: int
) -> None:
    per_case = data.draw(st.integers(1, len(readers)))
    loads = dict.fromkeys(readers, 0)
    for i in range(n_cases):
        chosen = assign_readers(seed, f"case-{i}", readers, per_case, loads)
        assert len(chosen) == len(set(chosen)) == per_case
        assert set(chosen) <= set(readers)
        assert chosen == assign_readers(seed, f"case-{i}", readers[::-1], per_case, loads)
        for reader in chosen:
            loads[reader] += 1
        assert within_one(list(loads.values()))


def test_assign_readers_prefers_the_least_loaded_and_breaks_ties_by_case():
    readers = ["r1", "r2", "r3", "r4"]
    assert assign_readers(1, "c1", readers, 1, {"r1": 3, "r2": 0, "r3": 3, "r4": 3}) == ("r2",)
    picks = {assign_readers(1, f"c{i}", readers, 1) for i in range(40)}
    assert len(picks) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"readers": [], "readers_per_case": 1}, "no readers"),
        ({"readers": ["a", "a"], "readers_per_case": 1}, "duplicate reader"),
        ({"readers": ["a"], "readers_per_case": 2}, "readers_per_case"),
        ({"readers": ["a"], "readers_per_case": 0}, "readers_per_case"),
        ({"readers": ["a"], "readers_per_case": 1, "loads": {"b": 1}}, "not in the pool"),
        ({"readers": ["a"], "readers_per_case": 1, "loads": {"a": -1}}, "non-negative"),
    ],
)
def test_assign_readers_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        assign_readers(1, "case", **kwargs)


# --- validation ---------------------------------------------------------------------------------

GOOD_CASES = [CaseInfo("c1", "s", "pos"), CaseInfo("c2", "s", "neg")]


@pytest.mark.parametrize(
    ("design", "kwargs", "message"),
    [
        ("crossover", {"readers": []}, "no readers"),
        ("crossover", {"cases": []}, "no cases"),
        ("crossover", {"readers": ["r", "r"]}, "duplicate reader IDs: r"),
        ("crossover", {"readers": [""]}, "non-empty strings"),
        ("crossover", {"cases": [GOOD_CASES[0], GOOD_CASES[0]]}, "duplicate case IDs: c1"),
        ("crossover", {"arms": ("assisted",)}, "at least two arms"),
        ("crossover", {"arms": ("a", "a")}, "duplicate arm"),
        ("crossover", {"seed": -1}, "seed must be non-negative"),
        ("crossover", {"seed": True}, "seed must be an integer"),
        ("crossover", {"groups": 2}, "groups applies only"),
        ("sequential", {"readers": []}, "no readers"),
        ("split_plot", {}, "needs the number of groups"),
        ("split_plot", {"groups": 3, "readers": ["r1", "r2", "r3"]}, "fewer cases"),
        ("split_plot", {"groups": 2, "readers": ["r"]}, "fewer readers"),
        ("split_plot", {"groups": 0}, "positive integer"),
        ("prospective", {}, "ProspectiveAllocator"),
        ("parallel", {}, "unknown design 'parallel'"),
    ],
)
def test_allocate_rejects_bad_input_naming_the_problem(design, kwargs, message):
    arguments: dict[str, Any] = {"seed": 1, "cases": GOOD_CASES, "readers": ["r1", "r2"], **kwargs}
    with pytest.raises(ValueError, match=message):
        allocate(design, **arguments)


def test_allocate_dispatches_to_the_design_functions():
    cases, readers = fixed_cases(10), ["r1", "r2", "r3"]
    assert allocate("crossover", seed=9, cases=cases, readers=readers) == crossover(
        seed=9, cases=cases, readers=readers
    )
    assert allocate("sequential", seed=9, cases=cases, readers=readers) == sequential(
        seed=9, cases=cases, readers=readers
    )
    assert allocate("split_plot", seed=9, cases=cases, readers=readers, groups=2) == split_plot(
        seed=9, cases=cases, readers=readers, groups=2
    )
