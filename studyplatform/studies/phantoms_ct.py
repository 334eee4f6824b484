"""Procedural chest CT phantoms in Hounsfield units, with solid lung nodules of known place.

The CT demo study, the CT demo model's training set and the tests need chest CT series whose
nodules are known exactly and which hold no patient data. This module draws them, slice by
slice (memory stays flat even at 512 x 512 x 300): an elliptical body (subcutaneous fat around
soft tissue) on a scanner table, two lungs whose cross-section swells from the base to the
middle of the stack and narrows to the apex, branching vessels (3-D segments from each hilum,
whose cross-sections look like nodules on any one slice: only the neighbouring slices tell a
vessel from a nodule), the heart and aorta in the mediastinum, a vertebra with its spinal
canal, and ribs that come and go along the stack.

Nodules are solid spheroids of 4-20 mm diameter, 0-100 HU, inside a lung. Each vendor
(:data:`VENDORS`) has its own noise level, reconstruction kernel (a soft kernel blurs more and
is less noisy), slice thickness, field of view (so pixel spacing) and Manufacturer: the mild
domain shift of a multi-site study.

Coordinates: slice index ``k`` from 0 (the most inferior slice; its DICOM z grows with ``k``),
``x`` the column and ``y`` the row, in pixels. Everything is drawn from
``numpy.random.default_rng([seed, stream])`` streams, so a seed gives the same volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
HU_MIN: Final = -1024
HU_MAX: Final = 3071
AIR: Final = -1000.0
LUNG: Final = -850.0
FAT: Final = -100.0
SOFT_TISSUE: Final = 40.0
BLOOD: Final = 45.0
TRABECULAR: Final = 250.0
CORTICAL: Final = 900.0
TABLE: Final = 150.0
MAX_NODULES: Final = 3

_ANATOMY_STREAM: Final = 1
_VESSEL_STREAM: Final = 2
_NODULE_STREAM: Final = 3
_NOISE_STREAM: Final = 4


@dataclass(frozen=True)
class CtVendor:
    """One scanner's acquisition and reconstruction.

    ``noise_hu`` is the standard deviation of the (slightly correlated) noise in HU;
    ``kernel_passes`` the passes of a [1, 2, 1] / 4 blur of the anatomy (a soft kernel blurs
    more); ``field_of_view`` the reconstruction diameter in mm (pixel spacing is it over the
    matrix size).
    """

    manufacturer: str
    model_name: str
    noise_hu: float
    kernel_passes: int
    slice_thickness: float
    field_of_view: float
    kernel_name: str


VENDORS: Final = (
    CtVendor("Acme Imaging", "Helios 64", 14.0, 2, 2.5, 360.0, "SOFT"),
    CtVendor("Borealis Medical", "Aurora CT 128", 28.0, 0, 1.25, 340.0, "LUNG"),
)


@dataclass(frozen=True)
class CtNodule:
    """A nodule's centre (slice index from 0, column ``x``, row ``y``, in pixels) and radius.

    ``radius_mm`` is its in-plane radius; ``radius_px`` the same in pixels; ``depth`` how many
    slices above and below the centre slice it reaches (its extent is ``slice - depth`` to
    ``slice + depth``).
    """

    slice: int
    x: float
    y: float
    radius_mm: float
    radius_px: float
    depth: int
    hu: float


@dataclass(frozen=True)
class CtPhantom:
    """A generated chest CT volume (slices x rows x columns, int16 HU) and its nodules."""

    seed: int
    volume: npt.NDArray[np.int16]
    nodules: tuple[CtNodule, ...]
    vendor: CtVendor
    pixel_spacing: float  # mm, rows and columns alike
    slice_spacing: float  # mm between slice centres (= the slice thickness: contiguous)

    @property
    def slice_thickness(self) -> float:
        return self.vendor.slice_thickness

    def nodule_slices(self) -> npt.NDArray[np.bool_]:
        """Per slice, whether a nodule crosses it (the detector's slice label)."""
        found = np.zeros(self.volume.shape[0], dtype=bool)
        for nodule in self.nodules:
            found[max(0, nodule.slice - nodule.depth) : nodule.slice + nodule.depth + 1] = True
        return found


@dataclass(frozen=True)
class _Vessel:
    start: npt.NDArray[np.float64]  # (x, y, z) in mm from the volume's centre
    end: npt.NDArray[np.float64]
    radius: float  # mm


@dataclass(frozen=True)
class _Spheroid:
    centre: npt.NDArray[np.float64]  # (x, y, z) mm
    radii: npt.NDArray[np.float64]  # (x, y, z) mm
    hu: float


@dataclass(frozen=True)
class _Anatomy:
    """The body's shape in mm from the volume's centre (x to the left of the image, y down)."""

    body: tuple[float, float]  # semi-axes
    fat: float  # thickness of the fat layer
    lung_x: float  # lungs' centres at +-lung_x
    lung_y: float
    lung_axes: tuple[float, float]
    heart: tuple[float, float, float, float]  # cx, cy, ax, ay
    spine_y: float
    rib_phase: npt.NDArray[np.float64]
    rib_angles: npt.NDArray[np.float64]


def _anatomy(rng: np.random.Generator) -> _Anatomy:
    scale = rng.uniform(0.9, 1.08)  # patient size
    return _Anatomy(
        body=(150.0 * scale, 105.0 * scale * rng.uniform(0.92, 1.05)),
        fat=rng.uniform(6.0, 16.0),
        lung_x=62.0 * scale,
        lung_y=-6.0 * scale,
        lung_axes=(50.0 * scale, 72.0 * scale),
        heart=(14.0 * scale, 22.0 * scale, 46.0 * scale, 38.0 * scale),
        spine_y=70.0 * scale,
        rib_phase=rng.uniform(0, 2 * np.pi, size=10),
        rib_angles=np.linspace(-2.5, 2.5, 10) + rng.normal(0, 0.05, 10),
    )


def _lung_scale(t: float) -> float:
    """The lungs' cross-section scale at height t in [0, 1] of the stack (0: base, 1: apex)."""
    return math.sqrt(min(max(1.0 - ((t - 0.45) / 0.62) ** 2, 0.05), 1.0))


def _vessels(rng: np.random.Generator, a: _Anatomy, depth_mm: float) -> list[_Vessel]:
    """Vessel trees: segments from each hilum outwards, each branch thinner than its parent."""
    vessels: list[_Vessel] = []
    for side in (-1.0, 1.0):
        hilum = np.array([side * (a.lung_x - 28.0), a.lung_y + 8.0, 0.0])
        for _ in range(7):
            direction = rng.normal(size=3) * np.array([1.0, 1.0, 1.6])
            direction[0] = side * abs(direction[0])
            direction /= np.linalg.norm(direction)
            length = rng.uniform(0.45, 0.8) * max(a.lung_axes[1], depth_mm / 2)
            end = hilum + direction * length
            radius = rng.uniform(2.2, 3.4)
            vessels.append(_Vessel(hilum, end, radius))
            for _ in range(3):  # branches from a point along the parent
                start = hilum + direction * length * rng.uniform(0.3, 0.8)
                turn = direction + rng.normal(scale=0.7, size=3)
                turn /= np.linalg.norm(turn)
                tip = start + turn * length * rng.uniform(0.25, 0.5)
                vessels.append(_Vessel(start, tip, radius * rng.uniform(0.45, 0.7)))
    return vessels


def _in_lung(a: _Anatomy, x: float, y: float, scale: float, margin: float) -> bool:
    side = 1.0 if x > 0 else -1.0
    ax, ay = a.lung_axes[0] * scale - margin, a.lung_axes[1] * scale - margin
    if ax <= 0 or ay <= 0:
        return False
    return ((x - side * a.lung_x) / ax) ** 2 + ((y - a.lung_y) / ay) ** 2 <= 1.0


def _nodules(
    rng: np.random.Generator, a: _Anatomy, count: int, depth_mm: float, height: float
) -> list[_Spheroid]:
    found: list[_Spheroid] = []
    for _ in range(count):
        for _attempt in range(200):
            radius = rng.uniform(2.0, 10.0)
            # Within the middle 60% of the stack, and the whole nodule inside it.
            limit = max(depth_mm / 2 - 1.2 * radius - 2.5, 0.0)
            z = rng.uniform(-1.0, 1.0) * min(limit, 0.3 * depth_mm)
            side = rng.choice((-1.0, 1.0))
            x = side * a.lung_x + rng.uniform(-1, 1) * a.lung_axes[0]
            y = a.lung_y + rng.uniform(-1, 1) * a.lung_axes[1]
            if not _in_lung(a, x, y, _lung_scale(0.5 + z / height), radius + 4.0):
                continue
            centre = np.array([x, y, z])
            if any(np.linalg.norm(centre - n.centre) < radius + n.radii[0] + 6 for n in found):
                continue
            radii = radius * np.array([1.0, rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)])
            found.append(_Spheroid(centre, radii, float(rng.uniform(0.0, 100.0))))
            break
        else:  # pragma: no cover - the lungs always have room for three nodules
            raise ValueError("could not place a nodule in the lungs")
    return found


def _blur(img: FloatArray, passes: int) -> FloatArray:
    for _ in range(passes):
        img = ((np.roll(img, 1, 0) + 2 * img + np.roll(img, -1, 0)) / 4).astype(np.float32)
        img = ((np.roll(img, 1, 1) + 2 * img + np.roll(img, -1, 1)) / 4).astype(np.float32)
    return img


def _ellipse(
    x: FloatArray, y: FloatArray, cx: float, cy: float, ax: float, ay: float
) -> npt.NDArray[np.bool_]:
    if ax <= 0 or ay <= 0:
        return np.zeros(x.shape, dtype=bool)
    inside: npt.NDArray[np.bool_] = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0
    return inside


def _draw_slice(
    a: _Anatomy,
    x: FloatArray,
    y: FloatArray,
    z: float,
    t: float,
    vessels: list[_Vessel],
    spheroids: list[_Spheroid],
) -> FloatArray:
    """One slice's clean HU image at height z (mm from the centre), t in [0, 1] of the stack."""
    img = np.full(x.shape, AIR, dtype=np.float32)
    bx, by = a.body
    img[_ellipse(x, y, 0.0, 0.0, bx, by)] = FAT
    img[_ellipse(x, y, 0.0, 0.0, bx - a.fat, by - a.fat)] = SOFT_TISSUE
    # The table: a curved slab under the patient's back.
    table = (y > by + 8.0) & (y < by + 8.0 + 12.0 + 0.0005 * x**2) & (np.abs(x) < 0.95 * bx)
    img[table] = TABLE
    scale = _lung_scale(t)
    lung = np.zeros(x.shape, dtype=bool)
    for side in (-1.0, 1.0):
        lung |= _ellipse(x, y, side * a.lung_x, a.lung_y, *(s * scale for s in a.lung_axes))
    img[lung] = LUNG
    # The heart in the lower two thirds of the stack, the aorta above it.
    cx, cy, hx, hy = a.heart
    heart_scale = math.sqrt(min(max(1.0 - ((t - 0.3) / 0.38) ** 2, 0.0), 1.0))
    img[_ellipse(x, y, cx, cy, hx * heart_scale, hy * heart_scale)] = BLOOD
    img[_ellipse(x, y, -8.0, a.spine_y - 34.0, 12.0, 12.0)] = BLOOD  # descending aorta
    # The vertebra: cortical ring, trabecular body, the spinal canal behind it.
    img[_ellipse(x, y, 0.0, a.spine_y, 17.0, 15.0)] = CORTICAL
    img[_ellipse(x, y, 0.0, a.spine_y, 14.0, 12.0)] = TRABECULAR
    img[_ellipse(x, y, 0.0, a.spine_y + 22.0, 8.0, 7.0)] = SOFT_TISSUE
    # Ribs cross the plane as ovals in the body wall, each on the slices its phase allows.
    for angle, phase in zip(a.rib_angles, a.rib_phase, strict=True):
        if math.sin(z / 9.0 + phase) < 0.2:
            continue
        rx = (bx - a.fat - 9.0) * math.sin(angle)
        ry = -(by - a.fat - 9.0) * math.cos(angle)
        img[_ellipse(x, y, rx, ry, 6.0, 4.5)] = CORTICAL
    for vessel in vessels:
        _draw_vessel(img, x, y, z, vessel, lung)
    for spheroid in spheroids:
        _draw_spheroid(img, x, y, z, spheroid)
    return img


def _draw_vessel(
    img: FloatArray,
    x: FloatArray,
    y: FloatArray,
    z: float,
    vessel: _Vessel,
    lung: npt.NDArray[np.bool_],
) -> None:
    """The vessel's cross-section on this slice (an ellipse where the vessel runs obliquely)."""
    (x0, y0, z0), (x1, y1, z1) = vessel.start, vessel.end
    if not min(z0, z1) <= z <= max(z0, z1) or abs(z1 - z0) < 1e-6:
        return
    f = (z - z0) / (z1 - z0)
    cx, cy = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
    # An oblique vessel's cut is stretched along its in-plane direction (capped).
    slope = min(math.hypot(x1 - x0, y1 - y0) / abs(z1 - z0), 3.0)
    r = vessel.radius
    inside = _ellipse(x, y, cx, cy, r * (1 + slope), r * (1 + slope)) & lung
    if not inside.any():
        return
    dx, dy = x[inside] - cx, y[inside] - cy
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    along, across = dx * ux + dy * uy, -dx * uy + dy * ux
    keep = (along / (r * (1 + slope))) ** 2 + (across / r) ** 2 <= 1.0
    values = img[inside]
    values[keep] = BLOOD
    img[inside] = values


def _draw_spheroid(img: FloatArray, x: FloatArray, y: FloatArray, z: float, s: _Spheroid) -> None:
    cx, cy, cz = s.centre
    rx, ry, rz = s.radii
    if abs(z - cz) >= rz:
        return
    k = math.sqrt(1.0 - ((z - cz) / rz) ** 2)
    d = np.sqrt(((x - cx) / (rx * k)) ** 2 + ((y - cy) / (ry * k)) ** 2)
    # A soft edge over the outer tenth of the radius: a solid nodule's partial volume.
    weight = np.clip((1.0 - d) / 0.1, 0.0, 1.0)
    img[:] = np.where(weight > 0, img * (1 - weight) + s.hu * weight, img)


def _place(s: _Spheroid, *, slices: int, size: int, spacing: float, v: CtVendor) -> CtNodule:
    """The nodule in pixels and slices: the slices it crosses are within its depth."""
    centre = s.centre[2] / v.slice_thickness + (slices - 1) / 2
    reach = s.radii[2] / v.slice_thickness
    crossed = [k for k in range(slices) if abs(k - centre) < reach] or [round(centre)]
    middle = min(max(round(centre), crossed[0]), crossed[-1])
    radius = float(max(s.radii[0], s.radii[1]))
    return CtNodule(
        slice=int(middle),
        x=round(float(s.centre[0] / spacing + (size - 1) / 2), 2),
        y=round(float(s.centre[1] / spacing + (size - 1) / 2), 2),
        radius_mm=round(radius, 2),
        radius_px=round(radius / spacing, 2),
        depth=int(max(middle - crossed[0], crossed[-1] - middle)),
        hu=round(s.hu, 1),
    )


def generate_ct_phantom(
    *, seed: int, n_nodules: int, vendor: int = 0, size: int = 128, slices: int = 48
) -> CtPhantom:
    """A chest CT phantom: ``slices`` axial slices of ``size`` x ``size`` pixels, in HU.

    ``n_nodules`` (0-3) solid nodules are placed in the lungs; ``vendor`` indexes
    :data:`VENDORS`. The slices are contiguous (spacing = the vendor's slice thickness), so the
    stack covers ``slices`` x thickness mm, centred on the middle of the lungs.
    """
    if not 0 <= n_nodules <= MAX_NODULES:
        raise ValueError(f"n_nodules must be 0..{MAX_NODULES}, not {n_nodules}")
    if not 0 <= vendor < len(VENDORS):
        raise ValueError(f"vendor must be 0..{len(VENDORS) - 1}, not {vendor}")
    if not 32 <= size <= 1024 or not 8 <= slices <= 1000:
        raise ValueError(f"size must be 32..1024 and slices 8..1000, not {size} and {slices}")
    v = VENDORS[vendor]
    spacing = v.field_of_view / size
    depth_mm = slices * v.slice_thickness
    # The anatomy spans about 300 mm of height whatever the stack covers: a thin stack is the
    # middle of the chest, so that 1.25 mm and 2.5 mm scanners show the same lungs.
    height = max(depth_mm, 300.0)
    anatomy = _anatomy(np.random.default_rng([seed, _ANATOMY_STREAM]))
    vessels = _vessels(np.random.default_rng([seed, _VESSEL_STREAM]), anatomy, height)
    spheroids = _nodules(
        np.random.default_rng([seed, _NODULE_STREAM]), anatomy, n_nodules, depth_mm, height
    )
    noise_rng = np.random.default_rng([seed, _NOISE_STREAM])
    axis = (np.arange(size, dtype=np.float32) - (size - 1) / 2) * np.float32(spacing)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    volume = np.empty((slices, size, size), dtype=np.int16)
    for k in range(slices):
        z = (k - (slices - 1) / 2) * v.slice_thickness
        t = 0.5 + z / height
        clean = _draw_slice(anatomy, x, y, z, t, vessels, spheroids)
        # One blur pass correlates the noise as a reconstruction does and scales its standard
        # deviation by 6/16 (the [1, 2, 1] / 4 kernel's squared weights, per axis): undone here.
        noise = _blur(noise_rng.standard_normal((size, size), dtype=np.float32), 1) / 0.375
        pixels = _blur(clean, v.kernel_passes) + np.float32(v.noise_hu) * noise
        volume[k] = np.clip(np.rint(pixels), HU_MIN, HU_MAX).astype(np.int16)
    nodules = tuple(_place(s, slices=slices, size=size, spacing=spacing, v=v) for s in spheroids)
    return CtPhantom(
        seed=seed,
        volume=volume,
        nodules=nodules,
        vendor=v,
        pixel_spacing=spacing,
        slice_spacing=v.slice_thickness,
    )
