"""The part of the ROC curve a partial area is taken over, as MRMCaov 0.3.0 defines it.

``specificity`` with ``min = a``, ``max = b`` is the area under TPR as a function of FPR for FPR
from ``1 - b`` to ``1 - a`` (specificity between ``a`` and ``b``); ``sensitivity`` swaps the axes:
the area under specificity (``1 - FPR``) as a function of TPR for TPR from ``a`` to ``b``.
``normalize`` divides the area by ``b - a``, so that a perfect reader scores 1 (MRMCaov's
``normalize = TRUE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PartialKind = Literal["specificity", "sensitivity"]
PARTIAL_KINDS: tuple[PartialKind, ...] = ("specificity", "sensitivity")


@dataclass(frozen=True)
class PartialArea:
    """A range of specificity or sensitivity, ``0 <= min < max <= 1``."""

    kind: PartialKind
    min: float
    max: float
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PARTIAL_KINDS:
            raise ValueError(f"partial area over {self.kind!r}: use {' or '.join(PARTIAL_KINDS)}")
        if not 0.0 <= self.min < self.max <= 1.0:
            raise ValueError(
                f"partial area over {self.kind} from {self.min} to {self.max}: "
                "need 0 <= min < max <= 1"
            )

    @property
    def width(self) -> float:
        return self.max - self.min

    @property
    def label(self) -> str:
        """E.g. ``partial AUC, specificity 0.8-1 (normalized)``."""
        scaled = " (normalized)" if self.normalize else ""
        return f"partial AUC, {self.kind} {self.min:g}-{self.max:g}{scaled}"
