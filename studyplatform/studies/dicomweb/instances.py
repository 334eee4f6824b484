"""What the DICOMweb imports need to know about a received instance before importing it."""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.filebase import ReadableBuffer


def has_pixel_data(data: bytes | ReadableBuffer) -> bool:
    """Whether an instance holds an image (reports, presentation states and the like do not).

    ``data`` is the instance's bytes or a seekable file holding it (read from its start; large
    values are skipped, not read). An unreadable instance counts as an image: the import then
    refuses it, naming it and why.
    """
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        source.seek(0)
        return "PixelData" in dcmread(source, defer_size=1024)
    except Exception:  # any parser failure: the import reports it by the instance's name
        return True
