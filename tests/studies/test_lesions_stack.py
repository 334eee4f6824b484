"""Lesions in a CT/MR stack: series, slice and depth checked against the case's series."""

from __future__ import annotations

from studyplatform.studies.lesions import lesion_problems, normalize_lesions

SIZES = {k: (64, 64) for k in range(1, 13)}
# Image positions 1-10 are series 1 (10 slices), 11-12 series 2 (2 slices).
STACKS = {k: (1, k, 10) for k in range(1, 11)} | {11: (2, 1, 2), 12: (2, 2, 2)}


def _lesion(**changes: object) -> dict[str, object]:
    return {"lesion": 1, "image": 5, "x": 10, "y": 12, "radius": 3, "series": 1, "slice": 5,
            "depth": 2} | changes  # fmt: skip


def test_a_lesion_within_its_series_is_accepted_and_stored_with_its_place():
    assert lesion_problems([_lesion()], present=True, sizes=SIZES, stacks=STACKS) == []
    stored = normalize_lesions([_lesion()])
    assert stored[0] | {} == {"lesion": 1, "image": 5, "x": 10.0, "y": 12.0, "radius": 3.0,
                              "series": 1, "slice": 5, "depth": 2}  # fmt: skip


def test_a_lesion_whose_extent_leaves_its_series_is_refused():
    problems = lesion_problems(
        [_lesion(image=9, slice=9, depth=2)], present=True, sizes=SIZES, stacks=STACKS
    )
    assert problems == ["lesion 1: slices 7 to 11 leave its series (slices 1 to 10)"]


def test_a_slice_that_is_not_the_images_is_refused():
    problems = lesion_problems([_lesion(slice=6)], present=True, sizes=SIZES, stacks=STACKS)
    assert problems == ["lesion 1: image 5 is series 1 slice 5, not series 1 slice 6"]


def test_a_negative_depth_is_refused():
    problems = lesion_problems([_lesion(depth=-1)], present=True, sizes=SIZES, stacks=STACKS)
    assert "depth" in problems[0]


def test_a_radiograph_lesion_is_unchanged():
    flat = {"lesion": 1, "image": 1, "x": 10, "y": 12, "radius": 3}
    assert lesion_problems([flat], present=True, sizes=SIZES) == []
    assert "slice" not in normalize_lesions([flat])[0]
