"""The randomizer's inputs and output: plain frozen dataclasses, and input validation.

The allocation is a value: rows sorted canonically and a SHA-256 fingerprint of a canonical
serialization, so "regenerated from the seed gives the identical allocation" is a comparison of
two hex strings, and the web app can recompute the fingerprint from the rows it stored.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_ARMS",
    "Allocation",
    "AllocationRow",
    "CaseInfo",
    "validate_arms",
    "validate_cases",
    "validate_readers",
    "validate_seed",
]

DEFAULT_ARMS: tuple[str, ...] = ("unassisted", "assisted")
"""The two conditions of a classic reader study; ``arms[0]`` is the unaided reference."""

SERIALIZATION_VERSION = 1


@dataclass(frozen=True, slots=True)
class CaseInfo:
    """A case as the randomizer sees it.

    Attributes
    ----------
    case_id : str
        Unique, stable identifier (it feeds the canonical order, so never a database row number
        that could change on re-import).
    site : str
        The hospital the case comes from; a stratification factor.
    truth_key : str
        A summary of the case's truth (``"positive"``/``"negative"``, or a string of per-finding
        truth); the stratum is ``(truth_key, site)``.
    """

    case_id: str
    site: str
    truth_key: str

    @property
    def stratum(self) -> tuple[str, str]:
        """The stratum ``(truth_key, site)`` within which arms are balanced."""
        return (self.truth_key, self.site)


@dataclass(frozen=True, slots=True)
class AllocationRow:
    """One read to be made: ``reader`` reads ``case_id`` in ``arm``.

    Attributes
    ----------
    reader, case_id, arm : str
        Who reads what under which condition.
    session : int
        Reading session, from 1; sessions of a crossover are separated by the washout.
    position : int
        Place of the case in the reader's order within the session, 1 .. n.
    step : int
        1 for every design but the sequential one, where step 1 is the unaided read and step 2
        (and later) the aided read(s) of the same case at the same position.
    """

    reader: str
    case_id: str
    arm: str
    session: int
    position: int
    step: int = 1

    def sort_key(self) -> tuple[str, int, int, int]:
        """The canonical order: by reader, then the order in which the reader meets the reads."""
        return (self.reader, self.session, self.position, self.step)


@dataclass(frozen=True, slots=True)
class Allocation:
    """A complete, reproducible allocation of one study.

    Rows are sorted canonically on construction (by reader, session, position, step), so an
    allocation rebuilt from stored rows in any order compares and fingerprints equal.

    Attributes
    ----------
    design : str
        ``"crossover"``, ``"sequential"`` or ``"split_plot"``.
    seed : int
        The study's recorded seed.
    arms : tuple of str
        The conditions, in the study's order.
    rows : tuple of AllocationRow
        Every read, canonically sorted.
    """

    design: str
    seed: int
    arms: tuple[str, ...]
    rows: tuple[AllocationRow, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "rows", tuple(sorted(self.rows, key=AllocationRow.sort_key)))

    def serialize(self) -> bytes:
        """Return the canonical serialization the fingerprint is taken of.

        ASCII JSON without whitespace: ``{"arms": [...], "design": ..., "rows": [[reader,
        case_id, arm, session, position, step], ...], "seed": ..., "version": 1}`` with keys
        sorted and rows in canonical order.
        """
        payload = {
            "version": SERIALIZATION_VERSION,
            "design": self.design,
            "seed": self.seed,
            "arms": list(self.arms),
            "rows": [
                [r.reader, r.case_id, r.arm, r.session, r.position, r.step] for r in self.rows
            ],
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")

    def fingerprint(self) -> str:
        """Return the SHA-256 hex digest of :meth:`serialize`, the allocation's identity."""
        return hashlib.sha256(self.serialize()).hexdigest()

    def for_reader(self, reader: str) -> tuple[AllocationRow, ...]:
        """Return one reader's rows in reading order."""
        return tuple(r for r in self.rows if r.reader == reader)


def validate_seed(seed: int) -> int:
    """Return ``seed`` if it is a non-negative integer, else raise ``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return seed


def _check_ids(kind: str, ids: Sequence[str]) -> None:
    for value in ids:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{kind} IDs must be non-empty strings, got {value!r}")
    duplicates = sorted(value for value, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate {kind} IDs: {', '.join(duplicates[:10])}")


def validate_readers(readers: Iterable[str]) -> tuple[str, ...]:
    """Return the readers sorted canonically, after checking they are non-empty and unique."""
    readers = list(readers)
    if not readers:
        raise ValueError("no readers: an allocation needs at least one reader")
    _check_ids("reader", readers)
    return tuple(sorted(readers))


def validate_cases(cases: Iterable[CaseInfo]) -> tuple[CaseInfo, ...]:
    """Return the cases sorted by ``case_id``, after checking they are non-empty and unique.

    Sorting makes the allocation independent of the order the database or a file lists cases in.
    """
    cases = list(cases)
    if not cases:
        raise ValueError("no cases: an allocation needs at least one case")
    for case in cases:
        if not isinstance(case, CaseInfo):
            raise ValueError(f"cases must be CaseInfo, got {type(case).__name__}")
        if not isinstance(case.site, str) or not isinstance(case.truth_key, str):
            raise ValueError(f"case {case.case_id!r}: site and truth_key must be strings")
    _check_ids("case", [c.case_id for c in cases])
    return tuple(sorted(cases, key=lambda c: c.case_id))


def validate_arms(arms: Iterable[str]) -> tuple[str, ...]:
    """Return ``arms`` as a tuple (order kept: it is meaningful), checking at least two, unique."""
    arms = tuple(arms)
    if len(arms) < 2:
        raise ValueError(f"at least two arms are needed, got {list(arms)}")
    _check_ids("arm", list(arms))
    return arms
