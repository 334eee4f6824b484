from __future__ import annotations

import pytest

from tests.dashboard.builders import BuiltStudy, build_study


@pytest.fixture
def built(db) -> BuiltStudy:
    """4 readers x 30 cases x 2 arms x 2 finding types, every read submitted."""
    return build_study("sim")
