"""CT and MR series: slice geometry from DICOM headers, the frames of a multi-frame object, and
putting a case's slices in order, series by series. No Django import.

A slice's place in its series is its position along the series' normal: with ImageOrientationPatient
giving the row direction r and the column direction c (unit vectors in patient coordinates), the
normal is n = r x c and a slice at ImagePositionPatient p lies at z = p . n (PS3.3 C.7.6.2.1.1).
Sorting by z is what viewers do; the received order and InstanceNumber are not reliable. Where
positions are missing or the slices disagree on their orientation, InstanceNumber is used instead
and the import says so.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from pydicom import dcmread
from pydicom.pixels.utils import pixel_array

from studyplatform.studies import imaging
from studyplatform.studies.imaging import DicomImage, ImageError, IntArray

#: Two slices closer than this (mm along the normal) are the same slice sent twice.
DUPLICATE_MM: Final = 0.01
#: A step this many times the series' median spacing means slices are missing.
GAP_FACTOR: Final = 1.5
#: Orientation cosines of one series may differ by this much (rounding in the headers).
ORIENTATION_TOLERANCE: Final = 1e-3
#: How many of the middle slices the series' own window is computed from.
WINDOW_SLICES: Final = 5


@dataclass(frozen=True)
class SliceHeader:
    """What a slice's (de-identified) header says about its series and its place in it."""

    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    series_number: int | None = None
    description: str = ""
    body_part: str = ""
    view_position: str = ""
    instance_number: int | None = None
    frame: int | None = None  # of a multi-frame object, from 1
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient: row, column cosines
    position: tuple[float, ...] | None = None  # ImagePositionPatient, mm
    pixel_spacing: tuple[float, ...] | None = None  # row spacing, column spacing, mm
    slice_thickness: float | None = None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(ds: Any, keyword: str, limit: int) -> str:
    return str(ds.get(keyword, "") or "").strip()[:limit]


def _group_value(items: Sequence[Any], sequence: str, keyword: str) -> Any:
    """``keyword`` inside functional group ``sequence`` of the first item that has it."""
    for item in items:
        if item is None or sequence not in item or not item[sequence].value:
            continue
        inner = item[sequence].value[0]
        if keyword in inner and inner[keyword].value not in (None, ""):
            return inner[keyword].value
    return None


def slice_headers(ds: Any) -> list[SliceHeader]:
    """One :class:`SliceHeader` per frame of ``ds`` (one for a single-frame image).

    A multi-frame object's frames take their position, orientation and pixel spacing from the
    per-frame functional groups, then the shared ones, then the top-level attributes.
    """
    frames = max(1, _int(ds.get("NumberOfFrames", 1)) or 1)
    common: dict[str, Any] = {
        "study_uid": _text(ds, "StudyInstanceUID", 64),
        "series_uid": _text(ds, "SeriesInstanceUID", 64),
        "sop_uid": _text(ds, "SOPInstanceUID", 64),
        "series_number": _int(ds.get("SeriesNumber")),
        "description": _text(ds, "SeriesDescription", 64),
        "body_part": _text(ds, "BodyPartExamined", 16),
        "view_position": _text(ds, "ViewPosition", 16),
        "instance_number": _int(ds.get("InstanceNumber")),
    }
    top_orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    top_position = _floats(ds.get("ImagePositionPatient"), 3)
    top_spacing = _floats(ds.get("PixelSpacing"), 2)
    top_thickness = _float(ds.get("SliceThickness"))
    if frames == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [
            SliceHeader(
                **common,
                orientation=top_orientation,
                position=top_position,
                pixel_spacing=top_spacing,
                slice_thickness=top_thickness,
            )
        ]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    headers = []
    for index in range(frames):
        own = per_frame[index] if index < len(per_frame) else None
        groups = (own, shared)
        position = _floats(_group_value(groups, "PlanePositionSequence", "ImagePositionPatient"), 3)
        orientation = _floats(
            _group_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
        )
        spacing = _floats(_group_value(groups, "PixelMeasuresSequence", "PixelSpacing"), 2)
        thickness = _float(_group_value(groups, "PixelMeasuresSequence", "SliceThickness"))
        headers.append(
            SliceHeader(
                **common,
                frame=index + 1,
                orientation=orientation or top_orientation,
                position=position or (top_position if frames == 1 else None),
                pixel_spacing=spacing or top_spacing,
                slice_thickness=thickness if thickness is not None else top_thickness,
            )
        )
    return headers


# What each frame of a multi-frame object takes from its functional groups (PS3.3 C.7.6.16):
# its rescale to stored units (Pixel Value Transformation) and its window (Frame VOI LUT).
_FRAME_GROUPS: Final = (
    ("RescaleSlope", "PixelValueTransformationSequence"),
    ("RescaleIntercept", "PixelValueTransformationSequence"),
    ("WindowCenter", "FrameVOILUTSequence"),
    ("WindowWidth", "FrameVOILUTSequence"),
)


def iter_frames(data: bytes, *, name: str, max_decoded_bytes: int) -> Iterator[DicomImage]:
    """Every frame of a (de-identified) multi-frame DICOM file, display-ready, in frame order.

    The pixel data is decoded once (within ``max_decoded_bytes``, checked on the header first);
    each frame is rescaled and windowed as its functional groups say (Pixel Value
    Transformation, Frame VOI LUT), else as the top-level attributes say.
    """
    ds = dcmread(io.BytesIO(data))
    size = imaging.dicom_decoded_size(ds, name=name)
    imaging.check_decoded_size(size, name=name, max_bytes=max_decoded_bytes)
    if size.samples != 1:
        raise ImageError(f"{name}: a multi-frame series must be grayscale (1 sample per pixel)")
    try:
        stack = pixel_array(ds)
    except Exception as exc:  # decoders raise many types (missing plug-in, truncated data, ...)
        raise ImageError(f"{name}: cannot decode the frames' pixel data: {exc}") from exc
    del ds.PixelData
    if stack.ndim == 2:
        stack = stack[np.newaxis]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    top = {k: ds.get(k) for k, _ in _FRAME_GROUPS}
    for index in range(stack.shape[0]):
        own = per_frame[index] if index < len(per_frame) else None
        for keyword, sequence in _FRAME_GROUPS:
            value = _group_value((own, shared), sequence, keyword)
            value = value if value is not None else top[keyword]
            if value is not None:
                setattr(ds, keyword, value)
        yield imaging.dicom_image(ds, stack[index], name=f"{name} frame {index + 1}")


@dataclass(frozen=True)
class SeriesPlan:
    """One series of a case as it will be stored: its slices (indices into the items given to
    :func:`plan_series`) in order, and how that order was found."""

    series_uid: str
    slices: tuple[int, ...]
    ordered_by: str  # "position", "instance_number" or "received" (OrderedBy's values)
    normal: tuple[float, float, float] | None
    positions: tuple[float | None, ...]  # mm along the normal, per slice in order
    spacing: float | None


@dataclass(frozen=True)
class SeriesLayout:
    plans: tuple[SeriesPlan, ...]
    problems: tuple[tuple[str, str], ...]  # (where, why): the case cannot be stored as it is
    notes: tuple[str, ...]  # worth telling, not wrong (an order found by InstanceNumber)


def _normal(orientation: tuple[float, ...]) -> tuple[float, float, float] | None:
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, column)
    length = float(np.linalg.norm(normal))
    if length < 0.5:  # not two (nearly) orthogonal unit vectors
        return None
    x, y, z = (float(v) for v in normal / length)
    return x, y, z


def _geometric_order(
    indices: list[int], headers: Sequence[SliceHeader | None]
) -> tuple[list[int], tuple[float, float, float], list[float]] | None:
    """The slices sorted along their common normal, or None when positions cannot say."""
    found = [headers[i] for i in indices]
    if any(h is None or h.orientation is None or h.position is None for h in found):
        return None
    first = found[0]
    assert first is not None and first.orientation is not None  # narrowed above
    reference = np.array(first.orientation)
    for h in found:
        assert h is not None and h.orientation is not None
        if np.max(np.abs(np.array(h.orientation) - reference)) > ORIENTATION_TOLERANCE:
            return None
    normal = _normal(first.orientation)
    if normal is None:
        return None
    z = {i: float(np.dot(headers[i].position, normal)) for i in indices}  # type: ignore[union-attr,arg-type]
    ordered = sorted(indices, key=lambda i: (z[i], _instance_key(headers[i], i)))
    return ordered, normal, [z[i] for i in ordered]


def _instance_key(header: SliceHeader | None, index: int) -> tuple[int, int, int]:
    if header is None:
        return (1, 0, index)
    number = header.instance_number if header.instance_number is not None else 1 << 30
    return (0, number, header.frame or 0)


def _check_spacing(
    label: str, names: Sequence[str], positions: Sequence[float]
) -> tuple[float | None, list[tuple[str, str]]]:
    steps = np.diff(np.asarray(positions, dtype=np.float64))
    if steps.size == 0:
        return None, []
    problems = []
    for k in (int(i) for i in np.flatnonzero(steps < DUPLICATE_MM)):
        problems.append(
            (
                label,
                f"slices {k + 1} and {k + 2} ({names[k]}, {names[k + 1]}) are at the same "
                f"position ({positions[k]:.2f} mm along the normal): a slice sent twice?",
            )
        )
    distinct = steps[steps >= DUPLICATE_MM]
    spacing = float(np.median(distinct)) if distinct.size else None
    if spacing is not None and steps.size >= 2:
        for k in (int(i) for i in np.flatnonzero(steps > GAP_FACTOR * spacing)):
            problems.append(
                (
                    label,
                    f"gap of {steps[k]:.2f} mm between slices {k + 1} and {k + 2} "
                    f"({names[k]}, {names[k + 1]}) where the series' spacing is "
                    f"{spacing:.2f} mm: slices missing?",
                )
            )
    return spacing, problems


def plan_series(names: Sequence[str], headers: Sequence[SliceHeader | None]) -> SeriesLayout:
    """Group slices into series (by SeriesInstanceUID) and put each series in order.

    ``names`` name each slice for messages (the received file, and the frame of a multi-frame
    object); ``headers`` is None for a slice without a DICOM header (PNG, JPEG): such slices
    form one series, in the order received. Series are ordered by SeriesNumber, then as first
    received. A series ordered by position is checked: two slices at one position, or a step
    over :data:`GAP_FACTOR` times the median spacing, is a problem naming the series and the
    slices.
    """
    if len(names) != len(headers):
        raise ValueError("names and headers must have the same length")
    groups: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        groups.setdefault(header.series_uid if header else "", []).append(index)

    def series_key(uid: str) -> tuple[int, int]:
        first = headers[groups[uid][0]]
        number = first.series_number if first and first.series_number is not None else 1 << 30
        return (number, groups[uid][0])

    plans: list[SeriesPlan] = []
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    for position, uid in enumerate(sorted(groups, key=series_key), start=1):
        indices = groups[uid]
        first = headers[indices[0]]
        number = first.series_number if first else None
        label = f"series {number if number is not None else position} (from {names[indices[0]]})"
        geometric = _geometric_order(indices, headers)
        if geometric is not None:
            ordered, normal, z = geometric
            spacing, found = _check_spacing(label, [names[i] for i in ordered], z)
            problems.extend(found)
            plans.append(SeriesPlan(uid, tuple(ordered), "position", normal, tuple(z), spacing))
            continue
        if all(
            h is not None and h.instance_number is not None for h in (headers[i] for i in indices)
        ):
            ordered = sorted(indices, key=lambda i: _instance_key(headers[i], i))
            how = "instance_number"
            if len(indices) > 1:
                notes.append(
                    f"{label}: slices ordered by InstanceNumber (the headers give no consistent "
                    "ImagePositionPatient and ImageOrientationPatient)"
                )
        else:
            ordered, how = indices, "received"
            if len(indices) > 1 and uid:
                notes.append(f"{label}: slices kept in the order received (no InstanceNumber)")
        plans.append(SeriesPlan(uid, tuple(ordered), how, None, (None,) * len(ordered), None))
    return SeriesLayout(tuple(plans), tuple(problems), tuple(notes))


def middle_slices(count: int, *, at_most: int = WINDOW_SLICES) -> list[int]:
    """Indices of up to ``at_most`` slices spread over the middle third of ``count`` slices."""
    if count <= 0:
        return []
    low = count // 3
    high = max(low, count - 1 - count // 3)
    picks = np.linspace(low, high, num=min(at_most, high - low + 1))
    return sorted({round(float(v)) for v in picks})


def stack_window(slices: Sequence[IntArray]) -> tuple[float, float]:
    """Window center and width spanning the 1st to 99th percentile of the given slices' values.

    For MR, whose values have no fixed scale, this is the series' own default window.
    """
    if not slices:
        raise ValueError("no slices to compute a window from")
    values = np.concatenate([np.asarray(s).ravel() for s in slices])
    low, high = np.percentile(values, [1.0, 99.0])
    return float((low + high) / 2.0), float(max(high - low, 1.0))
