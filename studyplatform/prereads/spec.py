"""A model's spec: what the platform must know to feed a model and read its outputs.

Stored as JSON on the AIModel (``spec``) and given to ``register_model --spec spec.json``::

    {
      "finding_codes": ["nodule", "pneumothorax", "effusion"],   # output order
      "input_size": [128, 128],                                   # rows, columns
      "channels": 1,                                              # gray repeated if > 1
      "normalization": {"mode": "percentile", "low": 1, "high": 99, "mean": 0.5, "std": 0.25},
      "thresholds": {"nodule": 0.5, "pneumothorax": 0.5, "effusion": 0.5},
      "target_layer": "features.14",                              # Grad-CAM layer (not TorchScript)
      "input_kind": "image"                                       # or "slices", "volume"
    }

``input_kind`` says what one input is. ``image`` (the default): the case's first image, its gray
values repeated over the channels. ``slices`` (2.5D, for CT and MR): every slice of the case's
first series in turn, with its neighbours as channels: with ``channels`` = 2m + 1, slice k's
input holds slices k - m .. k + m (the first and last slices repeated at the ends of the
stack), each resized to ``input_size``; the platform runs all slices (batched), the case's
probability for a finding is the **maximum over its slices**, and Grad-CAM gives one heatmap per
slice.

``volume`` (3-D, for CT and MR): the case's first series read whole, as one input of
``channels`` x depth x rows x columns, with ``input_size`` ``[depth, rows, columns]`` and an
optional ``spacing`` ``[depth, rows, columns]`` in mm per voxel. Without ``spacing`` the whole
series is stretched onto the grid, each axis on its own; with it the series is first resampled
to that voxel size (from the series' slice spacing and pixel spacing) and then centre-cropped or
padded to the grid (see ``volume.py`` for the resampling policy). The model returns one logit per
finding for the whole case and its target feature map is 3-D; Grad-CAM's 3-D map is mapped back
onto the series' own slices and stored as one heatmap per slice, as for ``slices``.

Normalization first maps the stored gray values to about [0, 1] (``mode``: ``percentile`` between
the image's low/high percentiles, ``minmax``, ``window`` with the image's own display window,
``hu_window`` with the spec's own window ``center`` and ``width`` in stored units, HU for CT,
values outside it clipped; ``fixed`` dividing by ``scale``), then applies ``(x - mean) / std``.
Outputs are logits; the platform applies the sigmoid (multi-label: one independent probability
per finding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

NORMALIZATION_MODES: Final = ("percentile", "minmax", "window", "hu_window", "fixed")
INPUT_KINDS: Final = ("image", "slices", "volume")
IMAGE: Final = "image"
SLICES: Final = "slices"
VOLUME: Final = "volume"
HU_WINDOW: Final = "hu_window"


class SpecError(ValueError):
    """A spec that cannot be used; the message names the field and what is wrong."""


@dataclass(frozen=True)
class Normalization:
    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.0
    scale: float = 4095.0
    mean: float = 0.0
    std: float = 1.0
    center: float = 0.0  # hu_window only
    width: float = 0.0

    def bounds(self) -> tuple[float, float]:
        """The ``hu_window`` mode's stored values mapped to 0 and 1."""
        return self.center - self.width / 2.0, self.center + self.width / 2.0


@dataclass(frozen=True)
class ModelSpec:
    finding_codes: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int = 1
    normalization: Normalization = field(default_factory=Normalization)
    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    target_layer: str = ""
    input_kind: str = IMAGE
    depth: int = 0  # a volume's slices on the model's grid (0 unless input_kind is volume)
    spacing: tuple[float, float, float] | None = None  # a volume's voxel size in mm, if fixed

    @property
    def grid(self) -> tuple[int, int, int]:
        """A volume model's input grid: depth, rows, columns."""
        return self.depth, self.input_size[0], self.input_size[1]

    @property
    def neighbours(self) -> int:
        """Slices either side of the read slice in a ``slices`` input (0 for ``image``)."""
        return self.channels // 2 if self.input_kind == SLICES else 0

    def threshold(self, code: str) -> float:
        return self.thresholds.get(code, 0.5)

    def as_json(self) -> dict[str, Any]:
        n = self.normalization
        size = [self.depth, *self.input_size] if self.input_kind == VOLUME else self.input_size
        data: dict[str, Any] = {
            "finding_codes": list(self.finding_codes),
            "input_size": list(size),
            "channels": self.channels,
            "normalization": {
                "mode": n.mode,
                "low": n.low,
                "high": n.high,
                "scale": n.scale,
                "mean": n.mean,
                "std": n.std,
            },
            "thresholds": {code: self.threshold(code) for code in self.finding_codes},
            "target_layer": self.target_layer,
        }
        # Only what a spec uses is written, so specs registered before a field existed stay
        # exactly as they were recorded.
        if n.mode == HU_WINDOW:
            data["normalization"] |= {"center": n.center, "width": n.width}
        if self.input_kind != IMAGE:
            data["input_kind"] = self.input_kind
        if self.spacing is not None:
            data["spacing"] = list(self.spacing)
        return data


def _number(data: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"spec: {where}{key} must be a number, not {value!r}")
    return float(value)


def parse_spec(data: Any) -> ModelSpec:
    """Validate a spec (parsed JSON); :class:`SpecError` names the first problem found."""
    if not isinstance(data, Mapping):
        raise SpecError("spec: must be a JSON object")
    unknown = set(data) - {
        "finding_codes",
        "input_size",
        "channels",
        "normalization",
        "thresholds",
        "target_layer",
        "input_kind",
        "spacing",
    }
    if unknown:
        raise SpecError(f"spec: unknown fields {sorted(unknown)}")
    codes = data.get("finding_codes")
    if (
        not isinstance(codes, list)
        or not codes
        or not all(isinstance(c, str) and c.strip() for c in codes)
    ):
        raise SpecError("spec: finding_codes must be a non-empty list of finding type codes")
    if len(set(codes)) != len(codes):
        raise SpecError(f"spec: finding_codes has duplicates: {codes}")
    kind = data.get("input_kind", IMAGE)
    if kind not in INPUT_KINDS:
        raise SpecError(f"spec: input_kind must be one of {INPUT_KINDS}, not {kind!r}")
    size = data.get("input_size")
    if isinstance(size, int) and not isinstance(size, bool) and kind != VOLUME:
        size = [size, size]
    if kind == VOLUME:
        if (
            not isinstance(size, list)
            or len(size) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
            or not 4 <= size[0] <= 4096
            or not all(8 <= s <= 4096 for s in size[1:])
        ):
            raise SpecError(
                "spec: input_size of a 'volume' input must be [depth, rows, columns] (depth "
                f"4..4096, rows and columns 8..4096), not {size!r}"
            )
    elif (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 4096 for s in size)
    ):
        raise SpecError(f"spec: input_size must be [rows, columns] of 8..4096, not {size!r}")
    channels = data.get("channels", 1)
    if kind in (IMAGE, VOLUME) and channels not in (1, 3):
        raise SpecError(f"spec: channels must be 1 or 3, not {channels!r}")
    if kind == SLICES and channels not in (1, 3, 5, 7):
        raise SpecError(
            f"spec: channels of a 'slices' input must be 1, 3, 5 or 7 (the slice and its "
            f"neighbours), not {channels!r}"
        )
    spacing = _spacing(data.get("spacing"), kind)
    raw_norm = data.get("normalization", {})
    if not isinstance(raw_norm, Mapping):
        raise SpecError("spec: normalization must be an object")
    mode = raw_norm.get("mode", "percentile")
    if mode not in NORMALIZATION_MODES:
        raise SpecError(f"spec: normalization.mode must be one of {NORMALIZATION_MODES}")
    norm = Normalization(
        mode=mode,
        low=_number(raw_norm, "low", 1.0, "normalization."),
        high=_number(raw_norm, "high", 99.0, "normalization."),
        scale=_number(raw_norm, "scale", 4095.0, "normalization."),
        mean=_number(raw_norm, "mean", 0.0, "normalization."),
        std=_number(raw_norm, "std", 1.0, "normalization."),
        center=_number(raw_norm, "center", 0.0, "normalization."),
        width=_number(raw_norm, "width", 0.0, "normalization."),
    )
    if mode == HU_WINDOW and norm.width <= 0:
        raise SpecError(
            "spec: normalization mode 'hu_window' needs a positive width (and a center), in "
            "stored units (HU for CT)"
        )
    if not 0.0 <= norm.low < norm.high <= 100.0:
        raise SpecError("spec: normalization needs 0 <= low < high <= 100 (percentiles)")
    if norm.std <= 0 or norm.scale <= 0:
        raise SpecError("spec: normalization.std and normalization.scale must be positive")
    raw_thresholds = data.get("thresholds", {})
    if not isinstance(raw_thresholds, Mapping):
        raise SpecError("spec: thresholds must be an object {finding code: threshold}")
    extra = set(raw_thresholds) - set(codes)
    if extra:
        raise SpecError(f"spec: thresholds for findings not in finding_codes: {sorted(extra)}")
    thresholds = {code: _number(raw_thresholds, code, 0.5, "thresholds.") for code in codes}
    bad = [code for code, t in thresholds.items() if not 0.0 <= t <= 1.0]
    if bad:
        raise SpecError(f"spec: thresholds must be within 0..1 (bad: {bad})")
    target = data.get("target_layer", "")
    if not isinstance(target, str):
        raise SpecError("spec: target_layer must be a module name such as 'features.14'")
    return ModelSpec(
        finding_codes=tuple(codes),
        input_size=(int(size[-2]), int(size[-1])),
        channels=int(channels),
        normalization=norm,
        thresholds=MappingProxyType(thresholds),
        target_layer=target,
        input_kind=str(kind),
        depth=int(size[0]) if kind == VOLUME else 0,
        spacing=spacing,
    )


def _spacing(value: Any, kind: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if kind != VOLUME:
        raise SpecError(f"spec: spacing applies to a 'volume' input only, not {kind!r}")
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise SpecError(
            f"spec: spacing must be [depth, rows, columns] in mm, each positive, not {value!r}"
        )
    return float(value[0]), float(value[1]), float(value[2])
