"""Stored heatmaps as served: one slice's map out of a ``slices`` model's stacked heatmap.

Torch-free (Pillow only), so the web app can serve heatmaps without loading torch.
"""

from __future__ import annotations

import io

from PIL import Image


def slice_heatmap(stacked: bytes, *, slices: int, index: int) -> bytes:
    """One slice's map (``index`` from 0) out of a stacked heatmap PNG, as its own PNG.

    The stacked PNG holds ``slices`` maps of equal height, top to bottom in slice order.
    """
    with Image.open(io.BytesIO(stacked)) as image:
        width, height = image.size
        if slices < 1 or height % slices:
            raise ValueError(f"a heatmap {height} px high does not hold {slices} slices")
        if not 0 <= index < slices:
            raise ValueError(f"slice index {index} is not in 0..{slices - 1}")
        step = height // slices
        part = image.crop((0, index * step, width, (index + 1) * step))
        buffer = io.BytesIO()
        part.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
