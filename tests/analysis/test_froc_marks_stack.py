"""Marks on CT/MR stacks: a lesion with a depth is localized from any slice of its extent."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.froc.marks import score_marks


def _marks(*rows: tuple[int, float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [("R1", "assisted", "C1", image, x, y, 80 - i) for i, (image, x, y) in enumerate(rows)],
        columns=["reader", "treatment", "case", "image", "x", "y", "rating"],
    )


LESION = pd.DataFrame(
    [("C1", 1, 20, 50.0, 60.0, 3.0, 2)],
    columns=["case", "lesion", "image", "x", "y", "radius", "depth"],
)


def test_a_mark_within_the_depth_and_radius_localizes_the_lesion():
    scored = score_marks(_marks((22, 51.0, 61.0)), LESION, ["C1", "C2"])
    assert list(scored.marks["kind"]) == ["LL"]


def test_a_mark_past_the_depth_or_outside_the_radius_is_a_non_lesion_localization():
    scored = score_marks(_marks((23, 50.0, 60.0), (19, 55.0, 60.0)), LESION, ["C1"])
    assert list(scored.marks["kind"]) == ["NL", "NL"]


def test_two_marks_on_different_slices_of_one_lesion_give_one_ll_and_one_nl():
    scored = score_marks(_marks((18, 50.0, 60.0), (20, 50.0, 60.0)), LESION, ["C1"])
    assert list(scored.marks["kind"]) == ["LL", "NL"]  # the higher rating is the LL


def test_without_a_depth_a_lesion_is_on_its_own_image_only():
    flat = LESION.drop(columns="depth")
    scored = score_marks(_marks((21, 50.0, 60.0), (20, 50.0, 60.0)), flat, ["C1"])
    assert list(scored.marks["kind"]) == ["NL", "LL"]


def test_a_depth_that_is_not_a_whole_number_is_refused():
    with pytest.raises(ValueError, match="depth"):
        score_marks(_marks((20, 50.0, 60.0)), LESION.assign(depth=1.5), ["C1"])
