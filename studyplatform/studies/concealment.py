"""Commitments that let the audit trail prove the allocation later without revealing it now.

The seed decides every arm. While a study runs nobody may learn it, yet the trail must show that
the allocation came from the seed the server drew. The trail therefore records a commitment, the
SHA-256 of the seed, when the allocation is made; when the study is locked or unblinded the seed
is revealed and anyone can check that it hashes to the recorded value. A prospectively arriving
case's arm is recorded the same way, as an HMAC keyed by the seed: two arms could be tried by
hand against a plain hash, not against a keyed one.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

CONCEALED = "concealed until the study is locked"
"""What pages show instead of a seed or an unopened arm."""

_CONCEALED_KEYS = frozenset({"seed", "arm", "arm_id"})


def conceal_seed_and_arms(value: Any) -> Any:
    """``value`` with every seed and arm replaced (at any depth), for a study still running.

    How the audit trail's before/after values are shown (the admin, the audit export) until the
    study is locked or unblinded; the stored events keep them, so the chain still verifies.
    """
    if isinstance(value, dict):
        return {
            key: CONCEALED if key in _CONCEALED_KEYS else conceal_seed_and_arms(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [conceal_seed_and_arms(item) for item in value]
    return value


def seed_commitment(seed: int) -> str:
    """SHA-256 (hex) of the seed written in decimal: ``sha256(str(seed))``."""
    return hashlib.sha256(str(seed).encode("ascii")).hexdigest()


def arm_commitment(seed: int, case_id: str, arm: str) -> str:
    """HMAC-SHA-256 (hex) of ``case_id:arm`` keyed by the decimal seed."""
    message = f"{case_id}:{arm}".encode()
    return hmac.new(str(seed).encode("ascii"), message, hashlib.sha256).hexdigest()
