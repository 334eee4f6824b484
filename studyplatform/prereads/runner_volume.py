"""Running a ``volume`` (3-D) model on a CT or MR series: the whole series as one input.

No database here: ``runner`` loads the slices and stores the result. The series is resampled
onto the model's grid (``volume.py`` states the policy), normalized over the whole series as the
spec says, and run once; the case's probability per finding is the model's own. Grad-CAM on the
3-D target layer gives one map per finding, combined over findings as for an image
(``gradcam.combine``), mapped back onto the series' slices and stored as a ``slices`` model's
maps are: one 8-bit PNG, the slices' maps stacked top to bottom in slice order, served one slice
at a time by the same URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from studyplatform.prereads import gradcam
from studyplatform.prereads.inference import LoadedModel, normalize
from studyplatform.prereads.volume import fit, plan_grid, resample, to_slices


@dataclass(frozen=True)
class VolumeResult:
    probabilities: npt.NDArray[np.float64]  # per finding
    heatmaps: bytes  # the stacked PNG, one map per slice of the series
    slices: int
    timings: dict[str, float]


def run_volume(
    loaded: LoadedModel,
    stack: npt.NDArray[Any],
    *,
    shown: list[int],
    window: tuple[float, float] | None = None,
    spacing: tuple[float | None, float, float] | None = None,
) -> VolumeResult:
    """Run ``loaded`` (a ``volume`` model) on a series' stack (slices x rows x columns, in the
    series' stored units: HU for CT) with voxel size ``spacing`` (mm between slices, pixel
    spacing's rows and columns); ``shown`` are the output indices of the study's findings."""
    spec = loaded.spec
    arr = np.asarray(stack, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise ValueError(f"expected a stack of 2-D slices, got shape {arr.shape}")
    t0 = time.perf_counter()
    plan = plan_grid((arr.shape[0], arr.shape[1], arr.shape[2]), spec, spacing=spacing)
    scaled = normalize(resample(arr, plan), spec, window=window, what="series")
    n = spec.normalization
    # Padding is the bottom of the normalization range: 0 before (x - mean) / std.
    x = fit(scaled, plan, fill=(0.0 - n.mean) / n.std)
    batch = torch.from_numpy(np.repeat(x[None, None], spec.channels, axis=1)).to(loaded.device)
    batch.requires_grad_(True)  # so the map has a gradient even with frozen weights
    t1 = time.perf_counter()
    with torch.enable_grad():
        logits, fmap = loaded.forward(batch)
        probabilities = torch.sigmoid(logits).detach().double().cpu().numpy()[0]
        t2 = time.perf_counter()
        cams = gradcam.grad_cam(logits, fmap).float().cpu().numpy()[0]
    combined = gradcam.combine(cams[shown], probabilities[shown])
    maps = to_slices(combined, plan, spec.input_size)
    t3 = time.perf_counter()
    png = gradcam.encode_png(gradcam.quantize(maps.reshape(-1, maps.shape[2])))
    t4 = time.perf_counter()
    timings = {
        "preprocess": (t1 - t0) * 1000,
        "forward": (t2 - t1) * 1000,
        "gradcam": (t3 - t2) * 1000,
        "encode": (t4 - t3) * 1000,
    }
    return VolumeResult(probabilities, png, arr.shape[0], timings)
