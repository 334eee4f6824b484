"""The prospective parallel design: arms assigned case by case as cases arrive, then readers.

References
----------
.. [1] Rosenberger, W. F., & Lachin, J. M. (2016). *Randomization in Clinical Trials: Theory and
   Practice* (2nd ed.), chapters 3 and 7. Wiley. https://doi.org/10.1002/9781118742112
.. [2] Matts, J. P., & Lachin, J. M. (1988). Properties of permuted-block randomization in
   clinical trials. *Controlled Clinical Trials*, 9(4), 327-344.
   https://doi.org/10.1016/0197-2456(88)90047-5
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping

from studyplatform.studies.randomization.model import (
    DEFAULT_ARMS,
    validate_arms,
    validate_readers,
    validate_seed,
)
from studyplatform.studies.randomization.streams import below, permutation, stream

__all__ = ["ProspectiveAllocator", "assign_readers"]


def _check_site(site: str) -> None:
    if not isinstance(site, str) or not site:
        raise ValueError(f"site must be a non-empty string, got {site!r}")


class ProspectiveAllocator:
    """Permuted blocks of random size, stratified by site, computable for any arrival index.

    The ``index``-th case (counting from 0) to arrive at a site gets the arm at that place of the
    site's allocation sequence. The sequence is a concatenation of blocks; block ``b`` of a site
    draws its size uniformly from ``block_sizes`` and holds every arm ``size / len(arms)`` times
    in random order, both from the stream ``(seed, "prospective", site, "block", b)``. Hence:

    - arms are exactly balanced at the end of each block, and at any point the counts differ by
      at most ``max(block_sizes) / len(arms)`` (half the largest block with two arms) [2]_;
    - the answer depends only on the seed, the site and the index: not on other sites'
      arrivals, nor on the order or number of earlier calls, so the allocation can be
      regenerated and audited at any time;
    - with block sizes unknown to the staff, the end of a block, where the last arm of a fixed
      block would be certain, cannot be located, which blunts (not removes) the predictability
      of permuted blocks [1]_. Keep the block sizes out of every page a site can see.

    The object caches each site's block boundaries (under a lock); the cache changes speed, never
    results.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    arms : iterable of str, default ("unassisted", "assisted")
        The conditions.
    block_sizes : iterable of int, optional
        Candidate block sizes, each a positive multiple of ``len(arms)``; by default
        ``len(arms) * (1, 2, 3)``, i.e. 2, 4, 6 for two arms.
    """

    def __init__(
        self,
        seed: int,
        arms: Iterable[str] = DEFAULT_ARMS,
        block_sizes: Iterable[int] | None = None,
    ) -> None:
        self.seed = validate_seed(seed)
        self.arms = validate_arms(arms)
        k = len(self.arms)
        sizes = tuple(block_sizes) if block_sizes is not None else (k, 2 * k, 3 * k)
        if not sizes:
            raise ValueError("block_sizes is empty")
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % k:
                raise ValueError(f"block size {size!r} is not a positive multiple of the {k} arms")
        self.block_sizes: tuple[int, ...] = tuple(sorted(set(sizes)))
        self._ends: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def block_arms(self, site: str, block: int) -> tuple[str, ...]:
        """Return the arms of block ``block`` (from 0) of ``site``, in allocation order."""
        _check_site(site)
        if isinstance(block, bool) or not isinstance(block, int) or block < 0:
            raise ValueError(f"block must be a non-negative integer, got {block!r}")
        rng = stream(self.seed, "prospective", site, "block", str(block))
        size = self.block_sizes[below(rng, len(self.block_sizes))]
        pool = self.arms * (size // len(self.arms))
        return tuple(pool[i] for i in permutation(rng, size))

    def locate(self, site: str, index: int) -> tuple[int, int]:
        """Return ``(block, start)``: the block holding arrival ``index`` and its first index."""
        _check_site(site)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        with self._lock:
            ends = self._ends.setdefault(site, [])
            while not ends or ends[-1] <= index:
                start = ends[-1] if ends else 0
                ends.append(start + len(self.block_arms(site, len(ends))))
            block = bisect.bisect_right(ends, index)
            return block, (ends[block - 1] if block else 0)

    def arm_for(self, site: str, index: int) -> str:
        """Return the arm of the ``index``-th case (from 0) to arrive at ``site``."""
        block, start = self.locate(site, index)
        return self.block_arms(site, block)[index - start]

    def sequence(self, site: str, count: int) -> tuple[str, ...]:
        """Return the arms of the first ``count`` arrivals at ``site`` (for audit and tests)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        arms: list[str] = []
        block = 0
        while len(arms) < count:
            arms.extend(self.block_arms(site, block))
            block += 1
        return tuple(arms[:count])


def assign_readers(
    seed: int,
    case_id: str,
    readers: Iterable[str],
    readers_per_case: int,
    loads: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """Choose which readers of the pool read an arriving case, least-loaded first.

    Readers are ranked by their current load (cases assigned and not yet discounted, as the app
    counts them; missing readers count as 0), ties broken by a random order drawn from the stream
    ``(seed, "prospective", "readers", case_id)``; the first ``readers_per_case`` are chosen.
    Feeding back the loads after each case keeps every reader's workload within one case of every
    other's, and the choice is reproducible from the seed, the case ID and the loads, whatever
    order the pool is listed in.

    Parameters
    ----------
    seed : int
        The study's recorded seed.
    case_id : str
        The arriving case.
    readers : iterable of str
        The pool of reader IDs.
    readers_per_case : int
        How many readers read each case, 1 .. len(readers).
    loads : mapping of str to int, optional
        Current workload per reader (non-negative); readers not in it have 0.

    Returns
    -------
    tuple of str
        The chosen reader IDs, sorted.
    """
    seed = validate_seed(seed)
    if not isinstance(case_id, str) or not case_id:
        raise ValueError(f"case_id must be a non-empty string, got {case_id!r}")
    pool = validate_readers(readers)
    if isinstance(readers_per_case, bool) or not isinstance(readers_per_case, int):
        raise ValueError(f"readers_per_case must be an integer, got {readers_per_case!r}")
    if not 1 <= readers_per_case <= len(pool):
        raise ValueError(
            f"readers_per_case must be in 1 .. {len(pool)} (the pool), got {readers_per_case}"
        )
    loads = dict(loads or {})
    unknown = sorted(set(loads) - set(pool))
    if unknown:
        raise ValueError(f"loads given for readers not in the pool: {', '.join(unknown[:10])}")
    for reader, load in loads.items():
        if isinstance(load, bool) or not isinstance(load, int) or load < 0:
            raise ValueError(f"load of reader {reader!r} must be a non-negative integer")
    tiebreak = permutation(stream(seed, "prospective", "readers", case_id), len(pool))
    rank = {pool[i]: r for r, i in enumerate(tiebreak)}
    chosen = sorted(pool, key=lambda reader: (loads.get(reader, 0), rank[reader]))
    return tuple(sorted(chosen[:readers_per_case]))
