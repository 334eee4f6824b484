"""Phantoms: deterministic, lesions local and truthful, fast enough for the demo."""

import time

import numpy as np
import pytest

from studyplatform.studies.phantoms import FINDING_TYPES, MAX_VALUE, generate_phantom

SIZE = 256  # small images keep the suite fast; geometry is resolution independent


def _phantom(seed, *findings, **kwargs):
    return generate_phantom(seed=seed, findings=frozenset(findings), size=SIZE, **kwargs)


def test_same_seed_gives_identical_pixels():
    a = _phantom(7, "nodule", "effusion")
    b = _phantom(7, "effusion", "nodule")
    assert a.pixels.tobytes() == b.pixels.tobytes()
    assert a.locations == b.locations
    for name in a.masks:
        assert np.array_equal(a.masks[name], b.masks[name])


def test_different_seeds_give_different_patients():
    assert not np.array_equal(_phantom(1).pixels, _phantom(2).pixels)


def test_pixels_are_12_bit_monochrome2():
    p = _phantom(3)
    assert p.pixels.dtype == np.uint16
    assert p.pixels.shape == (SIZE, SIZE)
    assert p.pixels.min() >= 0
    assert p.pixels.max() <= MAX_VALUE
    # MONOCHROME2: the air outside the body (top corners) is darker than the mediastinum.
    corner = p.pixels[: SIZE // 10, : SIZE // 10].mean()
    centre = p.pixels[SIZE // 2, SIZE // 2 - 4 : SIZE // 2 + 4].mean()
    assert corner < centre - 1000
    # Lungs darker than the heart/mediastinum, and the image uses a wide part of the range.
    assert np.percentile(p.pixels, 99) - np.percentile(p.pixels, 1) > 2000


def test_normal_phantom_has_no_masks():
    p = _phantom(4)
    assert dict(p.masks) == {}
    assert dict(p.locations) == {}


@pytest.mark.parametrize("finding", FINDING_TYPES)
def test_finding_changes_pixels_mostly_near_its_mask(finding):
    for seed in (11, 12, 13):
        normal = _phantom(seed).pixels.astype(np.int32)
        sick = _phantom(seed, finding)
        mask = sick.masks[finding]
        assert mask.any()
        assert set(sick.masks) == {finding}
        row, col = sick.locations[finding]
        assert 0 <= row < SIZE and 0 <= col < SIZE
        diff = np.abs(sick.pixels.astype(np.int32) - normal)
        assert diff[mask].mean() > 20  # the lesion is really there
        rows, cols = np.nonzero(mask)
        margin = SIZE // 12
        near = np.zeros_like(mask)
        near[
            max(rows.min() - margin, 0) : rows.max() + margin + 1,
            max(cols.min() - margin, 0) : cols.max() + margin + 1,
        ] = True
        assert diff[near].sum() >= 0.95 * diff.sum()


def test_every_present_finding_has_a_mask_even_on_small_images():
    for seed in range(40):
        p = generate_phantom(seed=seed, findings=frozenset(FINDING_TYPES), size=64)
        for finding in FINDING_TYPES:
            assert p.masks[finding].any(), (seed, finding)
            assert p.masks[finding][p.locations[finding]] or finding != "nodule"


def test_lesion_difficulty_varies():
    contrasts = []
    for seed in range(20, 32):
        normal = _phantom(seed).pixels.astype(np.float64)
        sick = _phantom(seed, "nodule")
        mask = sick.masks["nodule"]
        contrasts.append((sick.pixels[mask] - normal[mask]).mean())
    assert min(contrasts) < 0.4 * max(contrasts)


def test_larger_nodules_are_denser_but_some_stay_faint():
    # A sphere's projected thickness grows with its size: big nodules are the conspicuous ones.
    areas, contrasts = [], []
    for seed in range(40, 64):
        normal = _phantom(seed).pixels.astype(np.float64)
        sick = _phantom(seed, "nodule")
        mask = sick.masks["nodule"]
        areas.append(mask.sum())
        contrasts.append((sick.pixels[mask] - normal[mask]).max())
    assert np.corrcoef(areas, contrasts)[0, 1] > 0.3
    assert min(contrasts) < 0.3 * max(contrasts)


def test_modality_and_style_shift_the_rendering_not_the_patient():
    cr = _phantom(5, "nodule", modality="CR", manufacturer_style=0)
    dx = _phantom(5, "nodule", modality="DX", manufacturer_style=2)
    assert not np.array_equal(cr.pixels, dx.pixels)
    assert np.array_equal(cr.masks["nodule"], dx.masks["nodule"])
    correlation = np.corrcoef(cr.pixels.ravel(), dx.pixels.ravel())[0, 1]
    assert correlation > 0.95


@pytest.mark.parametrize(
    "kwargs",
    [
        {"findings": frozenset({"fracture"})},
        {"modality": "CT"},
        {"manufacturer_style": 3},
        {"size": 16},
        {"seed": -1},
    ],
)
def test_bad_arguments_are_refused(kwargs):
    arguments = {"seed": 1, "findings": frozenset(), "size": SIZE} | kwargs
    with pytest.raises(ValueError):
        generate_phantom(**arguments)


def test_full_size_image_is_fast():
    generate_phantom(seed=0, findings=frozenset(FINDING_TYPES))  # warm caches
    start = time.perf_counter()
    for seed in range(3):
        generate_phantom(seed=seed, findings=frozenset(FINDING_TYPES))
    assert (time.perf_counter() - start) / 3 < 0.4  # target 0.1 s; slack for a busy CI machine
