"""What the DICOMweb imports need to know about a received instance before importing it."""

from __future__ import annotations

import io

from pydicom import dcmread


def has_pixel_data(data: bytes) -> bool:
    """Whether an instance holds an image (reports, presentation states and the like do not).

    An unreadable instance counts as an image: the import then refuses it, naming it and why.
    """
    try:
        return "PixelData" in dcmread(io.BytesIO(data), defer_size=1024)
    except Exception:  # any parser failure: the import reports it by the instance's name
        return True
