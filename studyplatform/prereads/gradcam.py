"""Grad-CAM (Selvaraju et al., ICCV 2017, doi:10.1109/ICCV.2017.74) and the stored heatmap.

For finding k with logit y_k and target feature map A (channels c, positions i, j)::

    alpha_kc = mean_ij dy_k / dA_cij          (global-average-pooled gradients)
    cam_k    = ReLU(sum_c alpha_kc * A_c)

computed for the whole batch at once: in eval mode the samples are independent, so the gradient
of the batch sum of y_k with respect to A is each sample's own gradient.

The stored heatmap is one 8-bit gray PNG per pre-read, the size of the displayed image: each
finding's map scaled to its own maximum and weighted by that finding's probability, then the
maximum over findings, so a bright region means "the model looked here and is confident".
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own idiom)
from PIL import Image


def grad_cam(logits: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps, batch x findings x the feature map's positions (rows x columns, or
    depth x rows x columns for a 3-D layer), detached."""
    if logits.ndim != 2 or fmap.ndim not in (4, 5) or logits.shape[0] != fmap.shape[0]:
        raise ValueError(
            f"need logits B x K and map B x C x h x w (or B x C x d x h x w), got {logits.shape}, "
            f"{fmap.shape}"
        )
    n_findings = logits.shape[1]
    positions = tuple(range(2, fmap.ndim))
    maps = []
    for k in range(n_findings):
        (grads,) = torch.autograd.grad(logits[:, k].sum(), fmap, retain_graph=k < n_findings - 1)
        weights = grads.mean(dim=positions, keepdim=True)
        maps.append(F.relu((weights * fmap).sum(dim=1)))
    return torch.stack(maps, dim=1).detach()


def combine(
    cams: npt.NDArray[np.float32], probabilities: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """One map from K per-finding maps (K x h x w, or K x d x h x w): max over findings of
    probability x map / max."""
    spread = (slice(None),) + (None,) * (cams.ndim - 1)
    peaks = cams.reshape(cams.shape[0], -1).max(axis=1)
    scaled = cams / np.maximum(peaks, 1e-12)[spread]
    weighted = scaled * probabilities.astype(np.float32)[spread]
    combined: npt.NDArray[np.float32] = weighted.max(axis=0)
    return combined


def heatmap_image(cam: npt.NDArray[np.float32], shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Resize a 0..1 map to the displayed image (rows, columns) and quantize to 8 bits.

    The model's input is the whole image resized, so a bilinear resize of the map back to the
    image's size (half-pixel centres, align_corners=False) puts each value over the pixels it
    came from.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None]
    big = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return quantize(big)


def quantize(cam: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """A 0..1 map (any shape) as 8-bit gray levels."""
    out: npt.NDArray[np.uint8] = np.rint(np.clip(cam, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    # Level 1: heatmaps are smooth and compress well even at the fastest setting.
    Image.fromarray(image, mode="L").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
