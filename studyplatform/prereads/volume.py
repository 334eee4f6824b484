"""A series onto a ``volume`` model's grid, and the model's 3-D map back onto the series' slices.

The resampling policy, for a series of n slices of rows x columns and a spec's grid of
depth x rows' x columns':

- Without ``spacing`` in the spec, the whole series is stretched onto the grid, each axis on its
  own: every slice and every pixel is inside the input, and the physical scale varies with the
  series (a model that wants a fixed scale names its ``spacing``).
- With ``spacing`` [dz, dy, dx] (mm per voxel), the series is first resampled to that voxel size
  from its measured slice spacing and its pixel spacing (a series without either is refused,
  naming which), then centre-cropped to the grid or padded around it with the bottom of the
  normalization range (air, for a CT window).

Resampling is separable: each slice in-plane first (area averaging when shrinking, which
anti-aliases, bilinear otherwise: ``inference.resize_planes``), then along the slices (area
averaging when there are fewer grid slices than series slices, linear otherwise), all with
``torch.nn.functional.interpolate``. The map is mapped back by the inverse: trilinear up to the
grid, un-cropped (zero where the grid cropped the series), then trilinear onto the series' n
slices, each ``input_size`` high and wide as a ``slices`` model's maps are, which the viewer
stretches over the slice it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own idiom)

from studyplatform.prereads.inference import resize_planes
from studyplatform.prereads.spec import ModelSpec

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class VolumeGrid:
    """Where a series lands: ``source`` (the series), ``scaled`` (after resampling), ``grid``
    (the model's input: ``scaled`` cropped or padded about its centre)."""

    source: Shape
    scaled: Shape
    grid: Shape

    def overlap(self) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """The common part, as (slices of ``scaled``, slices of ``grid``)."""
        scaled: list[slice] = []
        grid: list[slice] = []
        for have, want in zip(self.scaled, self.grid, strict=True):
            offset = (have - want) // 2  # > 0: crop that many; < 0: pad
            start, to = max(offset, 0), max(-offset, 0)
            length = min(have - start, want - to)
            scaled.append(slice(start, start + length))
            grid.append(slice(to, to + length))
        return tuple(scaled), tuple(grid)


def plan_grid(
    source: Shape, spec: ModelSpec, *, spacing: tuple[float | None, float, float] | None
) -> VolumeGrid:
    """The grid plan of a series of shape ``source`` with voxel size ``spacing`` (mm between
    slices, then the pixel spacing's rows and columns; None where the series does not say)."""
    if spec.spacing is None:
        return VolumeGrid(source, spec.grid, spec.grid)
    if spacing is None or spacing[0] is None:
        missing = "slice spacing" if spacing is not None else "pixel spacing"
        raise ValueError(
            f"the series has no {missing}; the model's spec resamples to {list(spec.spacing)} mm "
            "and needs it"
        )
    have = (spacing[0], spacing[1], spacing[2])
    scaled = tuple(
        max(1, round(n * mm / want)) for n, mm, want in zip(source, have, spec.spacing, strict=True)
    )
    return VolumeGrid(source, (scaled[0], scaled[1], scaled[2]), spec.grid)


def resample(stack: npt.NDArray[np.float32], plan: VolumeGrid) -> npt.NDArray[np.float32]:
    """The series (n x rows x columns) resampled to ``plan.scaled``: in-plane, then along z."""
    depth, rows, cols = plan.scaled
    planes = resize_planes(torch.from_numpy(np.ascontiguousarray(stack))[:, None], (rows, cols))
    volume = planes[:, 0][None, None]
    if depth != volume.shape[2]:
        if depth < volume.shape[2]:
            volume = F.interpolate(volume, size=(depth, rows, cols), mode="area")
        else:
            volume = F.interpolate(
                volume, size=(depth, rows, cols), mode="trilinear", align_corners=False
            )
    out: npt.NDArray[np.float32] = volume[0, 0].numpy()
    return out


def fit(
    scaled: npt.NDArray[np.float32], plan: VolumeGrid, *, fill: float
) -> npt.NDArray[np.float32]:
    """The resampled series cropped or padded (with ``fill``) to the grid."""
    out = np.full(plan.grid, fill, dtype=np.float32)
    source, target = plan.overlap()
    out[target] = scaled[source]
    return out


def to_slices(
    cam: npt.NDArray[np.float32], plan: VolumeGrid, size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """A map on (a coarser copy of) the grid back onto the series: n x rows x columns of
    ``size``, zero where the grid cropped the series away."""
    tensor = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None]
    on_grid = F.interpolate(tensor, size=plan.grid, mode="trilinear", align_corners=False)
    scaled = torch.zeros((1, 1, *plan.scaled))
    source, target = plan.overlap()
    scaled[(slice(None), slice(None), *source)] = on_grid[(slice(None), slice(None), *target)]
    back = F.interpolate(
        scaled, size=(plan.source[0], *size), mode="trilinear", align_corners=False
    )
    out: npt.NDArray[np.float32] = back[0, 0].numpy()
    return out
