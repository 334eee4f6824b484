"""Scoring marks against lesions: the acceptance rule, the nearest lesion, one LL per lesion."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.froc.marks import score_marks

LESIONS = pd.DataFrame(
    {
        "case": ["A", "A", "B"],
        "lesion": [1, 2, 1],
        "image": [1, 1, 1],
        "x": [10.0, 30.0, 50.0],
        "y": [10.0, 10.0, 50.0],
        "radius": [5.0, 12.0, 4.0],
    }
)
CASES = ["A", "B", "N"]


def _marks(*rows):
    return pd.DataFrame(rows, columns=["reader", "treatment", "case", "image", "x", "y", "rating"])


def test_a_mark_inside_a_lesion_is_its_ll_and_one_outside_is_an_nl():
    scored = score_marks(
        _marks(("r1", "t", "A", 1, 13, 12, 80), ("r1", "t", "A", 1, 10, 30, 40)), LESIONS, CASES
    )

    assert scored.marks["kind"].tolist() == ["LL", "NL"]
    assert scored.marks["lesion"].tolist() == ["1", ""]
    assert scored.ll.to_dict("records") == [
        {"reader": "r1", "treatment": "t", "case": "A", "lesion": "1", "rating": 80}
    ]
    assert scored.nl["rating"].tolist() == [40]


def test_the_edge_of_the_circle_is_inside_and_just_beyond_it_is_not():
    scored = score_marks(
        _marks(("r", "t", "B", 1, 54, 50, 50), ("r", "t", "B", 1, 54.001, 50, 60)), LESIONS, CASES
    )

    assert scored.marks["kind"].tolist() == ["LL", "NL"]


def test_a_mark_on_another_image_of_the_case_localizes_nothing():
    scored = score_marks(_marks(("r", "t", "A", 2, 10, 10, 90)), LESIONS, CASES)

    assert scored.marks["kind"].tolist() == ["NL"]


def test_a_mark_within_two_lesions_goes_to_the_nearest_centre():
    # (22, 10) is 12 from lesion 1 (radius 5: outside) and 8 from lesion 2 (radius 12: inside).
    # With a 15-pixel distance rule it is within reach of both, and lesion 2 is nearer.
    marks = _marks(("r", "t", "A", 1, 22, 10, 70), ("r", "t", "A", 1, 17, 10, 60))

    inside = score_marks(marks, LESIONS, CASES)
    distance = score_marks(marks, LESIONS, CASES, rule="distance", distance=15)

    assert inside.marks["lesion"].tolist() == ["2", ""]
    assert inside.marks["kind"].tolist() == ["LL", "NL"]
    assert distance.marks["lesion"].tolist() == ["2", "1"]


def test_of_several_marks_on_one_lesion_the_highest_rated_is_the_ll_and_the_rest_nls():
    scored = score_marks(
        _marks(
            ("r", "t", "A", 1, 30, 10, 55),
            ("r", "t", "A", 1, 31, 11, 90),
            ("r", "t", "A", 1, 29, 9, 70),
            ("q", "t", "A", 1, 30, 10, 20),
        ),
        LESIONS,
        CASES,
    )

    assert scored.marks["kind"].tolist() == ["NL", "LL", "NL", "LL"]
    assert sorted(scored.nl["rating"]) == [55, 70]


def test_marks_of_an_absent_call_are_not_scored():
    marks = _marks(("r", "t", "A", 1, 10, 10, 30), ("r", "t", "N", 1, 10, 10, 30)).assign(
        call=[0, 1]
    )

    scored = score_marks(marks, LESIONS, CASES)

    assert scored.marks["kind"].tolist() == ["", "NL"]
    assert scored.ll.empty and len(scored.nl) == 1


def test_the_truth_lists_normal_cases_as_lesion_zero_and_the_data_holds_the_marks():
    scored = score_marks(_marks(("r", "t", "A", 1, 10, 10, 80)), LESIONS, CASES)

    assert scored.truth[["case", "lesion"]].values.tolist() == [
        ["N", "0"], ["A", "1"], ["A", "2"], ["B", "1"]
    ]  # fmt: skip
    data = scored.data(readers=["r"], treatments=["t"])
    assert data.cases == ("N", "A", "B") and data.ll[0, 0, 0, 0] == 80
    assert np.isneginf(data.ll[0, 0, 0, 1])


@pytest.mark.parametrize(
    ("marks", "kwargs", "message"),
    [
        (_marks(("r", "t", "Z", 1, 1, 1, 1)), {}, "marks on case(s) without truth: Z"),
        (_marks(("r", "t", "A", 1, "a", 1, 1)), {}, "marks row 1: x 'a' is not a number"),
        (_marks(("r", "t", "A", 1, 1, 1, 1)), {"rule": "near"}, "must be one of inside"),
        (_marks(("r", "t", "A", 1, 1, 1, 1)), {"rule": "distance"}, "needs a positive distance"),
        (_marks(("r", "t", "A", 1, 1, 1, 1)).drop(columns="rating"), {}, "lack column(s) rating"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(marks, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score_marks(marks, LESIONS, CASES, **kwargs)


_mark = st.tuples(
    st.sampled_from(["r1", "r2"]),
    st.sampled_from(["A", "B", "N"]),
    st.floats(0, 64, allow_nan=False),
    st.floats(0, 64, allow_nan=False),
    st.integers(0, 100),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_mark, max_size=30), st.sampled_from(["inside", "distance"]))
def test_every_mark_is_one_ll_or_nl_and_each_lesion_has_at_most_one_ll(rows, rule):
    marks = _marks(*((r, "t", c, 1, x, y, rating) for r, c, x, y, rating in rows))

    scored = score_marks(marks, LESIONS, CASES, rule=rule, distance=9.0)

    assert len(scored.nl) + len(scored.ll) == len(marks)
    assert not scored.ll.duplicated(["reader", "treatment", "case", "lesion"]).any()
    centres = LESIONS.set_index(["case", LESIONS["lesion"].astype(str)])
    for mark in scored.marks.itertuples():
        if mark.kind == "LL":
            key: tuple[Any, Any] = (mark.case, mark.lesion)
            centre = centres.loc[key]
            reach = centre["radius"] if rule == "inside" else 9.0
            assert math.hypot(mark.x - centre["x"], mark.y - centre["y"]) <= reach
    # An LL's rating is the highest of the marks on its lesion.
    for ll in scored.ll.itertuples():
        same = scored.marks[
            (scored.marks["reader"] == ll.reader)
            & (scored.marks["case"] == ll.case)
            & (scored.marks["kind"] == "LL")
        ]
        assert ll.rating in same["rating"].tolist()
