"""Running a ``slices`` (2.5-D) model on a CT or MR series: every slice, batched, one case.

No database here: ``runner`` loads the slices and stores the result. The case's probability
for a finding is the maximum over its slices of the slice's probability (one nodule on any slice
makes the case positive). Grad-CAM gives each slice its own map, combined over findings as for an
image (``gradcam.combine``, weighted by the slice's own probabilities, so slices the model finds
nothing on stay dark); the maps are stored as one 8-bit PNG, the slices' maps stacked top to
bottom in slice order (each ``input_size`` high), and served one slice at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from studyplatform.prereads import gradcam
from studyplatform.prereads.inference import LoadedModel, preprocess_stack, slice_inputs

CPU_SLICES: Final = 16  # slices per forward pass on the CPU
GPU_SLICES: Final = 128


@dataclass(frozen=True)
class SlicesResult:
    probabilities: npt.NDArray[np.float64]  # per finding: the maximum over slices
    slice_probabilities: npt.NDArray[np.float64]  # slices x findings
    heatmaps: bytes  # the stacked PNG
    slices: int
    timings: dict[str, float]


def run_slices(
    loaded: LoadedModel,
    stack: npt.NDArray[Any],
    *,
    shown: list[int],
    window: tuple[float, float] | None = None,
) -> SlicesResult:
    """Run ``loaded`` (a ``slices`` model) on a series' stack (slices x rows x columns, in the
    series' stored units: HU for CT); ``shown`` are the output indices of the study's findings.
    """
    spec = loaded.spec
    t0 = time.perf_counter()
    normalized = preprocess_stack(stack, spec, window=window)
    t1 = time.perf_counter()
    n = normalized.shape[0]
    chunk = GPU_SLICES if loaded.device.type == "cuda" else CPU_SLICES
    probabilities, cams, forward, grad = [], [], 0.0, 0.0
    for start in range(0, n, chunk):
        a = time.perf_counter()
        x = slice_inputs(normalized, range(start, min(n, start + chunk)), spec.neighbours)
        batch = torch.from_numpy(np.ascontiguousarray(x)).to(loaded.device)
        batch.requires_grad_(True)  # so the map has a gradient even with frozen weights
        with torch.enable_grad():
            logits, fmap = loaded.forward(batch)
            probabilities.append(torch.sigmoid(logits).detach().double().cpu().numpy())
            b = time.perf_counter()
            cams.append(gradcam.grad_cam(logits, fmap).float().cpu().numpy())
        forward += b - a
        grad += time.perf_counter() - b
    per_slice = np.concatenate(probabilities)
    maps = np.concatenate(cams)
    t2 = time.perf_counter()
    strip = np.concatenate(
        [
            gradcam.heatmap_image(
                gradcam.combine(maps[k][shown], per_slice[k][shown]), spec.input_size
            )
            for k in range(n)
        ]
    )
    png = gradcam.encode_png(strip)
    t3 = time.perf_counter()
    timings = {
        "preprocess": (t1 - t0) * 1000,
        "forward": forward * 1000,
        "gradcam": grad * 1000,
        "encode": (t3 - t2) * 1000,
    }
    return SlicesResult(per_slice.max(axis=0), per_slice, png, n, timings)
