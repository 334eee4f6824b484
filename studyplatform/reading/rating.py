"""The meaning of a reader's rating and its one consistency rule with the call.

The protocol's rating scale (``Study.rating_scale``) is the probability, 0-100, that the finding
is present. A call contradicts its rating when the finding is called present with a probability
below 50, or absent with a probability above 50; 50 agrees with either call. What a submission
with a contradiction gets is the protocol's ``Study.contradiction_rule``: refused ("reject"), or
accepted once the reader confirms it ("confirm").
"""

from __future__ import annotations

MIDPOINT = 50


def contradicts(*, present: bool, confidence: int) -> bool:
    """Whether the call (present or absent) disagrees with the probability 0-100 given with it."""
    return confidence < MIDPOINT if present else confidence > MIDPOINT


def describe_contradiction(*, name: str, present: bool, confidence: int) -> str:
    """One contradiction in the reader's words, naming the finding."""
    call = "present" if present else "absent"
    return f"{name}: {call} with probability {confidence} contradicts the call"
