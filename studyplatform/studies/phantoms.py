"""Procedural chest-radiograph-like phantoms with known lesions.

The demo study, the demo model's training set and the tests all need chest radiographs whose ground
truth is known exactly and which can be shipped without any patient data or download. This module
draws them: a PA chest projection built in a "density" domain (line integral of attenuation) from
simple analytic shapes, then turned into 12-bit MONOCHROME2 pixel values by a fixed detector and
processing chain whose parameters vary a little with modality and manufacturer (a mild domain shift
between sites, as in real multi-site studies).

Determinism: everything is drawn from ``numpy.random.default_rng`` streams derived from the seed.
The anatomy, the noise and each finding have their own stream, so adding a finding to a seed
changes the pixels only near that finding, and the same seed gives the same bytes on one machine
(numpy's vectorized transcendental functions may differ in the last bit between CPU families).

Lesion parameters are drawn from wide ranges on purpose: some lesions are obvious and some are
subtle, so that readers and the demo model reach realistic, imperfect accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

FINDING_TYPES: Final = ("nodule", "pneumothorax", "effusion")
FINDING_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"nodule": "Lung nodule", "pneumothorax": "Pneumothorax", "effusion": "Pleural effusion"}
)
MODALITIES: Final = ("CR", "DX")
N_MANUFACTURER_STYLES: Final = 3
MAX_VALUE: Final = 4095  # 12-bit detector range

# Per-finding stream keys: fixed numbers rather than list positions, so that adding a finding
# type later never changes the images already generated for the existing ones.
_FINDING_STREAM: Final[Mapping[str, int]] = {"nodule": 101, "pneumothorax": 202, "effusion": 303}
_ANATOMY_STREAM: Final = 1
_NOISE_STREAM: Final = 2


@dataclass(frozen=True)
class Phantom:
    """One generated radiograph and its exact ground truth.

    ``masks`` marks where each present finding is (for location truth, training and heatmap
    checks); ``locations`` is each finding's centre as ``(row, col)`` in pixels.
    """

    seed: int
    pixels: npt.NDArray[np.uint16]
    masks: Mapping[str, BoolArray]
    locations: Mapping[str, tuple[int, int]]
    modality: str = "CR"
    manufacturer_style: int = 0


@dataclass(frozen=True)
class _Processing:
    """The detector and image-processing chain of one (modality, manufacturer) pair."""

    noise: float  # quantum noise in density units at unit density
    mtf_px: int  # passes of a [1, 2, 1] / 4 blur: detector unsharpness
    unsharp: float  # edge-enhancement gain (typical of vendor post-processing)
    gamma: float
    contrast: float
    offset: float


def _processing(modality: str, style: int) -> _Processing:
    # CR plates are noisier and less sharp than flat-panel DX; the three styles stand for vendors
    # whose default processing differs in gamma, latitude and edge enhancement.
    base = (
        _Processing(noise=0.018, mtf_px=2, unsharp=0.5, gamma=1.0, contrast=1.0, offset=0.0)
        if modality == "CR"
        else _Processing(noise=0.011, mtf_px=1, unsharp=0.8, gamma=1.0, contrast=1.0, offset=0.0)
    )
    gamma = (1.0, 0.88, 1.12)[style]
    contrast = (1.0, 1.08, 0.93)[style]
    unsharp = (1.0, 1.4, 0.7)[style]
    noise = (1.0, 1.2, 0.85)[style]
    offset = (0.0, 0.02, -0.02)[style]
    return _Processing(
        noise=base.noise * noise,
        mtf_px=base.mtf_px,
        unsharp=base.unsharp * unsharp,
        gamma=gamma,
        contrast=contrast,
        offset=offset,
    )


def _smoothstep(e0: float | FloatArray, e1: float | FloatArray, x: FloatArray) -> FloatArray:
    t: FloatArray = np.clip((x - e0) / (e1 - e0), 0.0, 1.0).astype(np.float32)
    return t * t * (3.0 - 2.0 * t)


def _upsampled_noise(
    rng: np.random.Generator, lo: tuple[int, int], out: tuple[int, int]
) -> FloatArray:
    """Smooth random field: white noise on a coarse grid, bicubically enlarged (Pillow, in C)."""
    coarse = rng.standard_normal(lo).astype(np.float32)
    image = Image.fromarray(coarse).resize((out[1], out[0]), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


def _large_blur(img: FloatArray, factor: int) -> FloatArray:
    """Cheap wide low-pass (box down, bicubic up) for unsharp masking; far faster than a kernel."""
    h, w = img.shape
    small = Image.fromarray(img).resize(
        (max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX
    )
    return np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def _small_blur(img: FloatArray, passes: int) -> FloatArray:
    out = img
    for _ in range(passes):
        padded = np.pad(out, 1, mode="edge")
        out = 0.25 * padded[:-2, 1:-1] + 0.5 * padded[1:-1, 1:-1] + 0.25 * padded[2:, 1:-1]
        padded = np.pad(out, 1, mode="edge")
        out = 0.25 * padded[1:-1, :-2] + 0.5 * padded[1:-1, 1:-1] + 0.25 * padded[1:-1, 2:]
    return out.astype(np.float32)


def _bbox(mask: BoolArray) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


@dataclass(frozen=True)
class _Anatomy:
    """The finding-free density image plus the geometry that findings are placed against."""

    x: FloatArray  # anatomical coordinates (patient variation applied), ~[-1, 1]
    y: FloatArray
    density: FloatArray
    vessels: FloatArray  # lung markings, kept apart so a pneumothorax can remove them
    lung_air: FloatArray  # 0..1 per pixel
    lung_cx: tuple[float, float]  # centre x of the image-left and image-right lung
    lung_ax: float
    lung_top: float
    dome: tuple[float, float, float, float]  # (peak y, depth, width) per side; see _dome_y
    px: float  # one pixel in anatomical units


def _dome_y(x: FloatArray, cx: float, peak: float, depth: float, width: float) -> FloatArray:
    """Height of one hemidiaphragm: a parabola peaking under the lung's centre."""
    return (peak + depth * ((x - cx) / width) ** 2).astype(np.float32)


def _lung_r2(
    x: FloatArray, y: FloatArray, cx: float, side: int, ax: float, top: float
) -> FloatArray:
    """Implicit lung shape: < 1 inside. Rounded apex, lateral wall widening toward the base."""
    width = ax * (0.62 + 0.38 * _smoothstep(top, top + 0.75, y))
    cy = top + 0.42
    dx = (x - cx) / width
    # The medial border is straighter than the lateral one (it follows the mediastinum).
    dx = np.where(dx * side < 0, dx * 1.15, dx)
    dy = np.minimum(y - cy, 0.0) / 0.42
    r2: FloatArray = (dx * dx + dy * dy).astype(np.float32)
    return r2


def _build_anatomy(rng: np.random.Generator, size: int) -> _Anatomy:
    n = size
    coords = (np.arange(n, dtype=np.float32) + 0.5 - n / 2) / (n / 2)
    v, u = np.meshgrid(coords, coords, indexing="ij")

    # Patient variation: positioning (rotation, shift), habitus (scale), inspiration (lung height).
    angle = np.deg2rad(rng.normal(0.0, 2.0))
    scale = rng.uniform(0.9, 1.04)
    shift_x, shift_y = rng.normal(0.0, 0.025), rng.normal(0.02, 0.025)
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    uu, vv = u - shift_x, v - shift_y
    x = ((cos_a * uu + sin_a * vv) / scale).astype(np.float32)
    y = ((-sin_a * uu + cos_a * vv) / scale).astype(np.float32)
    px = float(2.0 / n / scale)

    # Body: elliptical cross-section (thicker in the middle), neck widening into the shoulders.
    half_width = 0.2 + 0.72 * _smoothstep(-1.05, -0.62, y)
    body = np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0))
    density = 0.62 * body

    # Lungs.
    lung_ax = rng.uniform(0.3, 0.35)
    lung_top = rng.uniform(-0.78, -0.7)
    spread = rng.uniform(0.4, 0.45)
    lung_cx = (-spread, spread + 0.02)
    dome_peak_l = rng.uniform(0.28, 0.4)
    dome_peak_r = dome_peak_l + rng.uniform(0.02, 0.07)  # the left hemidiaphragm sits lower
    dome_depth = rng.uniform(0.16, 0.24)
    dome_width = lung_ax * 1.05
    domes = (dome_peak_l, dome_peak_r, dome_depth, dome_width)
    lung_air = np.zeros_like(x)
    above_dome = np.zeros_like(x)
    for side, cx, peak in ((-1, lung_cx[0], dome_peak_l), (1, lung_cx[1], dome_peak_r)):
        r2 = _lung_r2(x, y, cx, side, lung_ax, lung_top)
        inside = _smoothstep(1.0, 0.86, r2)
        dome = _dome_y(x, cx, peak, dome_depth, dome_width)
        above = _smoothstep(dome + 0.012, dome - 0.012, y)
        half = (x < 0) if side < 0 else (x >= 0)
        above_dome = np.where(half, 1.0 - _smoothstep(dome - 0.01, dome + 0.01, y), above_dome)
        depth = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
        lung_air = np.maximum(lung_air, inside * above * (0.55 + 0.45 * depth))
    density = density - 0.33 * lung_air
    density = density + 0.06 * (1.0 - above_dome) * body  # liver/spleen below the domes

    # Gastric air bubble under the left hemidiaphragm.
    gx, gy = lung_cx[1] - 0.05, dome_peak_r + 0.1
    bubble = _smoothstep(1.0, 0.7, ((x - gx) / 0.12) ** 2 + ((y - gy) / 0.06) ** 2)
    density = density - rng.uniform(0.05, 0.12) * bubble * (y > dome_peak_r + 0.02)

    # Mediastinum and heart.
    med_w = 0.1 + 0.03 * _smoothstep(-0.6, -0.1, y)
    mediastinum = _smoothstep(med_w + 0.03, med_w - 0.01, np.abs(x - 0.01)) * _smoothstep(
        -1.0, -0.6, y
    )
    heart_size = rng.uniform(0.9, 1.12)
    hx, hy = 0.1, dome_peak_l - 0.1
    ca, sa = np.cos(0.5), np.sin(0.5)
    dxh, dyh = x - hx, y - hy
    rh = ((ca * dxh + sa * dyh) / (0.36 * heart_size)) ** 2 + (
        (-sa * dxh + ca * dyh) / (0.25 * heart_size)
    ) ** 2
    heart = np.sqrt(np.clip(1.0 - rh, 0.0, 1.0)) ** 0.5
    # The heart sits on the diaphragm: nothing of it shows below the domes. Where it overlaps the
    # mediastinum the two merge (maximum, not sum), so no seam shows at the great vessels.
    diaphragm_level = _smoothstep(dome_peak_r + 0.1, dome_peak_r + 0.03, y)
    heart = heart * above_dome * diaphragm_level
    mediastinum = mediastinum * diaphragm_level
    density = density + np.maximum(0.17 * mediastinum, 0.21 * heart)
    knob = _smoothstep(1.0, 0.3, ((x - 0.12) / 0.085) ** 2 + ((y + 0.36) / 0.07) ** 2)
    density = density + 0.07 * knob  # aortic knob

    # Trachea: an air column down to the carina.
    carina = -0.3 + rng.normal(0.0, 0.02)
    trachea = _smoothstep(0.03, 0.018, np.abs(x - 0.005)) * _smoothstep(carina + 0.02, carina, y)
    density = density - 0.09 * trachea

    # Spine: vertebral bodies with darker disc spaces, pedicles as paired ovals.
    spine = _smoothstep(0.075, 0.055, np.abs(x))
    level = (y + 1.2) / 0.095
    frac = level - np.floor(level)
    discs = _smoothstep(0.0, 0.12, frac) * _smoothstep(1.0, 0.88, frac)
    pedicle = _smoothstep(1.0, 0.5, ((np.abs(x) - 0.045) / 0.014) ** 2 + ((frac - 0.4) / 0.2) ** 2)
    density = density + spine * (0.025 + 0.03 * discs) + 0.02 * pedicle

    # Ribs: one periodic coordinate gives all posterior ribs at once; spacing widens downward.
    d = np.abs(x)
    thorax = _smoothstep(half_width * 0.98, half_width * 0.9, d) * _smoothstep(-0.95, -0.8, y)
    thorax = thorax * _smoothstep(dome_peak_r + 0.35, dome_peak_r + 0.15, y)
    q = y + 0.1 * d - 0.85 * d * d
    k = (q + 0.92) / 0.125
    k = np.where(k > 0, k * (1.0 - 0.02 * k), k)
    t = k - np.floor(k)
    band = _smoothstep(0.0, 0.07, t) * _smoothstep(0.47, 0.4, t)
    cortex = np.exp(-(((t - 0.03) / 0.035) ** 2)) + 1.3 * np.exp(-(((t - 0.44) / 0.035) ** 2))
    posterior = (0.03 * band + 0.03 * cortex) * _smoothstep(0.05, 0.12, d) * (k > 0) * (k < 11)
    qa = y - 0.5 * d + 0.12 * d * d
    ka = (qa + 1.2) / 0.15
    ta = ka - np.floor(ka)
    anterior = _smoothstep(0.0, 0.1, ta) * _smoothstep(0.42, 0.32, ta)
    anterior = 0.035 * anterior * _smoothstep(0.22, 0.4, d) * (ka > 1.5) * (ka < 7.5)
    density = density + thorax * (posterior + anterior)

    # Clavicles: S-shaped bands from the sternal notch up and out to the shoulders.
    clav_y = -0.66 - 0.22 * (d - 0.08) + 0.05 * np.sin((d - 0.08) * 5.5)
    clav_t = np.abs(y - clav_y)
    clavicle = (
        _smoothstep(0.032, 0.022, clav_t) * _smoothstep(0.06, 0.09, d) * _smoothstep(0.68, 0.6, d)
    )
    clav_edge = np.exp(-(((clav_t - 0.026) / 0.007) ** 2)) * _smoothstep(0.06, 0.09, d)
    density = density + (0.09 * clavicle + 0.03 * clav_edge * _smoothstep(0.68, 0.6, d))

    # Scapular edges over the upper lateral chest wall.
    for side in (-1, 1):
        scap = np.abs(side * x - (0.78 - 0.25 * (y + 0.7)))
        density = density + 0.03 * _smoothstep(0.05, 0.0, scap) * _smoothstep(-0.75, -0.6, y) * (
            _smoothstep(0.05, -0.1, y)
        )

    # Lung markings: ridged anisotropic noise in polar coordinates around each hilum gives
    # branching, tapering, radially running vessels.
    vessels = np.zeros_like(x)
    for side, cx in ((-1, lung_cx[0]), (1, lung_cx[1])):
        hxs, hys = cx - side * 0.2, lung_top + 0.62
        # Work only inside this lung's bounding box: the markings are zero elsewhere.
        box = _bbox((lung_air > 0.05) & (np.abs(x - hxs) < 0.6) & (np.abs(y - hys) < 0.6))
        if box is None:
            continue
        xb, yb, air = x[box], y[box], lung_air[box]
        r = np.hypot(xb - hxs, yb - hys) + 1e-3
        theta = np.arctan2(yb - hys, xb - hxs)
        grid = _upsampled_noise(rng, (8, 64), (128, 1024))
        gi = np.clip((np.log(r / 0.02) / np.log(60.0) * 127).astype(np.intp), 0, 127)
        gj = ((theta + np.pi) / (2 * np.pi) * 1023).astype(np.intp)
        field = grid[gi, gj]
        width = 0.35 * 0.12 / (r + 0.12)
        ridge = np.exp(-((field / width) ** 2)) * _smoothstep(0.04, 0.14, r)
        hilum = np.exp(-(((xb - hxs) / 0.07) ** 2 + ((yb - hys) / 0.14) ** 2)) ** 1.5
        vessels[box] += (
            (ridge * np.exp(-r / 0.38) * 0.11 + 0.1 * hilum)
            * (_smoothstep(0.0, 0.5, air) + 0.3)
            * _smoothstep(0.6, 0.4, r)
        )
    vessels = vessels * _smoothstep(0.05, 0.4, lung_air)

    # Breast shadows in about half of the patients: denser lower zones with a curved lower margin,
    # a classic place for a basal nodule to hide.
    if rng.random() < 0.5:
        amount = rng.uniform(0.03, 0.07)
        for side in (-1, 1):
            bx, by = side * rng.uniform(0.45, 0.6), dome_peak_l + rng.uniform(0.0, 0.12)
            rb = ((x - bx) / 0.36) ** 2 + ((y - by) / 0.3) ** 2
            density = density + amount * np.sqrt(np.clip(1.0 - rb, 0.0, 1.0)) ** 0.7 * body

    # Patient-to-patient tissue variation (breasts, fat, muscle) as smooth low-frequency fields.
    density = density + 0.03 * _upsampled_noise(rng, (5, 5), (n, n)) * body
    density = density + 0.012 * _upsampled_noise(rng, (24, 24), (n, n)) * body

    return _Anatomy(
        x=x,
        y=y,
        density=density.astype(np.float32),
        vessels=vessels.astype(np.float32),
        lung_air=lung_air.astype(np.float32),
        lung_cx=lung_cx,
        lung_ax=lung_ax,
        lung_top=lung_top,
        dome=domes,
        px=px,
    )


def _side_dome(a: _Anatomy, side: int) -> FloatArray:
    peak = a.dome[0] if side < 0 else a.dome[1]
    return _dome_y(a.x, a.lung_cx[0 if side < 0 else 1], peak, a.dome[2], a.dome[3])


def _nodule(a: _Anatomy, rng: np.random.Generator) -> tuple[FloatArray, FloatArray, BoolArray]:
    """A soft round opacity somewhere in a lung; small and faint ones are deliberately common.

    The radius is log-uniform over 0.02-0.07 (about 8-28 mm across on an adult chest). The peak
    density is the radius times a log-uniform 2-5: a sphere's projected thickness grows with its
    diameter, so large nodules are also the denser ones, as on real radiographs, while small
    ones stay faint. About a third are hard to see (under 0.1 peak density, little more than a
    rib crossing), so neither readers nor the demo model reach perfect accuracy; an earlier
    range (density independent of size, 0.035-0.14) left almost all of them below what the demo
    model could learn, its held-out nodule AUC at chance.
    """
    candidates = np.flatnonzero(a.lung_air.ravel() > 0.55)
    centre = int(candidates[rng.integers(candidates.size)])
    cx, cy = a.x.ravel()[centre], a.y.ravel()[centre]
    radius = float(np.exp(rng.uniform(np.log(0.02), np.log(0.07))))
    contrast = radius * float(np.exp(rng.uniform(np.log(2.0), np.log(5.0))))
    phase, lob = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.15)
    theta = np.arctan2(a.y - cy, a.x - cx)
    rr = np.hypot(a.x - cx, a.y - cy) / (radius * (1.0 + lob * np.cos(3 * theta + phase)))
    profile = np.sqrt(np.clip(1.0 - rr * rr, 0.0, 1.0)) ** 0.8
    density = (contrast * profile).astype(np.float32)
    return density, np.ones_like(a.x), rr < 1.0


def _pneumothorax(
    a: _Anatomy, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Air between chest wall and collapsed lung: apicolateral, vessel-free, a pleural line."""
    side = int(rng.choice([-1, 1]))
    cx = a.lung_cx[0 if side < 0 else 1]
    shrink = float(rng.uniform(0.8, 0.97))  # 0.97: a thin apical rim, easy to miss
    dome = _side_dome(a, side)
    base = float(np.max(dome[np.abs(a.x - (cx + side * a.lung_ax)) < 0.05], initial=0.6))
    anchor_x, anchor_y = cx - side * a.lung_ax * 0.6, a.lung_top + 0.75
    # Collapse is largest at the apex and laterally, none at the base (the upright position).
    taper = _smoothstep(base, a.lung_top + 0.2, a.y)
    k = 1.0 - (1.0 - shrink) * taper
    xs = np.where(side * (a.x - anchor_x) > 0, anchor_x + (a.x - anchor_x) / k, a.x)
    ys = np.where(a.y < anchor_y, anchor_y + (a.y - anchor_y) / k, a.y)
    r2_lung = _lung_r2(a.x, a.y, cx, side, a.lung_ax, a.lung_top)
    r2_coll = _lung_r2(
        xs.astype(np.float32), ys.astype(np.float32), cx, side, a.lung_ax, a.lung_top
    )
    half = (a.x < 0) if side < 0 else (a.x >= 0)
    above = a.y < dome - 0.02
    gap = (r2_lung < 0.97) & (r2_coll > 1.0) & half & above
    gap_soft = (
        _smoothstep(0.97, 0.9, r2_lung)
        * _smoothstep(1.0, 1.04, r2_coll)
        * half
        * _smoothstep(dome - 0.02, dome - 0.06, a.y)
    )
    line_w = 1.2 * a.px / (a.lung_ax * 0.5)
    line = np.exp(-(((r2_coll - 1.0) / line_w) ** 2))
    line = line * _smoothstep(0.97, 0.9, r2_lung) * half * _smoothstep(dome - 0.02, dome - 0.1, a.y)
    line = line * (r2_coll > 0.9)
    darkening = float(rng.uniform(0.02, 0.08))
    line_contrast = float(rng.uniform(0.012, 0.045))
    density = -darkening * gap_soft + line_contrast * line
    keep_vessels = 1.0 - gap_soft
    return density.astype(np.float32), keep_vessels.astype(np.float32), gap


def _effusion(a: _Anatomy, rng: np.random.Generator) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Fluid at a lung base: homogeneous, a meniscus rising laterally, the angle blunted."""
    side = int(rng.choice([-1, 1]))
    cx = a.lung_cx[0 if side < 0 else 1]
    dome = _side_dome(a, side)
    lateral_x = cx + side * a.lung_ax
    base = float(np.max(dome[np.abs(a.x - lateral_x) < 0.05], initial=0.6))
    height = float(np.exp(rng.uniform(np.log(0.04), np.log(0.5))))  # small ones only blunt
    lateral = np.clip((side * (a.x - cx)) / a.lung_ax * 0.5 + 0.5, 0.0, 1.2)
    surface = base - height - rng.uniform(0.08, 0.22) * lateral**3
    r2 = _lung_r2(a.x, a.y, cx, side, a.lung_ax, a.lung_top)
    in_chest = _smoothstep(1.02, 0.95, r2) * ((a.x < 0) if side < 0 else (a.x >= 0))
    fill = _smoothstep(surface, surface + 0.07, a.y) * in_chest
    fill = fill * _smoothstep(dome + 0.08, dome + 0.02, a.y)
    amount = float(rng.uniform(0.6, 1.0))
    # Fluid replaces lung air, so it adds (most of) the air's deficit: the base turns as dense as
    # soft tissue and the dome's silhouette is lost.
    density = fill * (0.33 * amount * a.lung_air + 0.02)
    mask = (fill > 0.3) & (a.lung_air > 0.1)
    return density.astype(np.float32), (1.0 - fill).astype(np.float32), mask


_FINDINGS = {"nodule": _nodule, "pneumothorax": _pneumothorax, "effusion": _effusion}


def generate_phantom(
    *,
    seed: int,
    findings: frozenset[str],
    size: int = 512,
    modality: str = "CR",
    manufacturer_style: int = 0,
) -> Phantom:
    """Draw one chest-radiograph-like image (12-bit, MONOCHROME2) and the truth for ``findings``.

    The same seed gives the same patient whatever the findings, so a seed with and without a
    lesion differs only around that lesion: useful for tests and for paired demo cases.
    """
    unknown = set(findings) - set(FINDING_TYPES)
    if unknown:
        raise ValueError(f"unknown finding types {sorted(unknown)}; known: {list(FINDING_TYPES)}")
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if not 0 <= manufacturer_style < N_MANUFACTURER_STYLES:
        raise ValueError(f"manufacturer_style must be 0..{N_MANUFACTURER_STYLES - 1}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, not {size}")

    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed}")
    anatomy = _build_anatomy(np.random.default_rng([seed, _ANATOMY_STREAM]), size)
    density = anatomy.density
    keep_vessels = np.ones_like(density)
    extra = np.zeros_like(density)
    masks: dict[str, BoolArray] = {}
    locations: dict[str, tuple[int, int]] = {}
    for name in FINDING_TYPES:  # fixed order: the result never depends on set iteration order
        if name not in findings:
            continue
        rng = np.random.default_rng([seed, _FINDING_STREAM[name]])
        add, keep, mask = _FINDINGS[name](anatomy, rng)
        extra = extra + add
        keep_vessels = keep_vessels * keep
        if not mask.any():
            # A very small lesion on a coarse grid: mark where it changes the image most, so
            # every present finding has a location.
            strength = np.abs(add)
            mask = strength >= 0.5 * float(strength.max())
        masks[name] = mask
        rows, cols = np.nonzero(mask)
        locations[name] = (round(float(rows.mean())), round(float(cols.mean())))
    density = density + extra + anatomy.vessels * keep_vessels

    pixels = _detector(
        density,
        np.random.default_rng([seed, _NOISE_STREAM]),
        _processing(modality, manufacturer_style),
    )
    return Phantom(
        seed=seed,
        pixels=pixels,
        masks=MappingProxyType(masks),
        locations=MappingProxyType(locations),
        modality=modality,
        manufacturer_style=manufacturer_style,
    )


def _detector(
    density: FloatArray, rng: np.random.Generator, p: _Processing
) -> npt.NDArray[np.uint16]:
    """Exposure, quantum noise, detector blur, vendor processing, the 12-bit characteristic curve.

    Only fixed (not image-dependent) transforms are used, so a lesion changes pixels locally.
    """
    n = density.shape[0]
    exposure = rng.uniform(0.92, 1.08)  # technique: kVp/mAs variation shows as global contrast
    level = rng.normal(0.0, 0.02)
    d = density * exposure + level
    # Quantum noise: fewer photons behind dense tissue, so noisier in the log domain there.
    photons = np.exp(-2.2 * np.clip(d, 0.0, None))
    white = rng.standard_normal(density.shape).astype(np.float32)
    d = d + p.noise * white / np.sqrt(photons) * (n / 512)
    d = _small_blur(d.astype(np.float32), p.mtf_px)
    d = d + p.unsharp * (d - _large_blur(d, max(2, n // 24)))
    d = d + 0.006 * _upsampled_noise(rng, (48, 48), density.shape)  # structured plate noise
    # A film-like shoulder keeps the mediastinum and abdomen from saturating.
    v = np.clip(d * p.contrast + p.offset, 0.0, None)
    v = ((1.0 - np.exp(-1.5 * v)) / (1.0 - np.exp(-1.5 * 1.1))).clip(0.0, 1.0) ** (0.9 * p.gamma)
    out = 120.0 + v * 3850.0
    pixels: npt.NDArray[np.uint16] = np.clip(np.rint(out), 0, MAX_VALUE).astype(np.uint16)
    return pixels
