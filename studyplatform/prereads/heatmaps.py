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
        box = _band(image, slices, index)
        if not 0 <= index < slices:
            raise ValueError(f"slice index {index} is not in 0..{slices - 1}")
        part = image.crop(box)
        buffer = io.BytesIO()
        part.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def slice_heatmap_images(stacked: bytes, *, slices: int) -> list[Image.Image]:
    """Every slice's map out of a stacked heatmap PNG, decoded once, in slice order."""
    with Image.open(io.BytesIO(stacked)) as image:
        image.load()
        return [image.crop(_band(image, slices, k)) for k in range(slices)]


def _band(image: Image.Image, slices: int, index: int) -> tuple[int, int, int, int]:
    """The box of slice ``index``'s map in a stack of ``slices`` maps of equal height."""
    width, height = image.size
    if slices < 1 or height % slices:
        raise ValueError(f"a heatmap {height} px high does not hold {slices} slices")
    step = height // slices
    return (0, index * step, width, (index + 1) * step)
