"""A model's spec: what the platform must know to feed a model and read its outputs.

Stored as JSON on the AIModel (``spec``) and given to ``register_model --spec spec.json``::

    {
      "finding_codes": ["nodule", "pneumothorax", "effusion"],   # output order
      "input_size": [128, 128],                                   # rows, columns
      "channels": 1,                                              # gray repeated if > 1
      "normalization": {"mode": "percentile", "low": 1, "high": 99, "mean": 0.5, "std": 0.25},
      "thresholds": {"nodule": 0.5, "pneumothorax": 0.5, "effusion": 0.5},
      "target_layer": "features.14",                              # Grad-CAM layer (not TorchScript)
      "input_kind": "image"                                       # or "slices" (CT/MR, 2.5D)
    }

``input_kind`` says what one input is. ``image`` (the default): the case's first image, its gray
values repeated over the channels. ``slices`` (2.5D, for CT and MR): every slice of the case's
first series in turn, with its neighbours as channels: with ``channels`` = 2m + 1, slice k's
input holds slices k - m .. k + m (the first and last slices repeated at the ends of the
stack), each resized to ``input_size``; the platform runs all slices (batched), the case's
probability for a finding is the **maximum over its slices**, and Grad-CAM gives one heatmap per
slice. ``volume`` (the whole stack at once) is reserved: the platform cannot run it yet and
refuses such a spec.

Normalization first maps the stored gray values to about [0, 1] (``mode``: ``percentile`` between
the image's low/high percentiles, ``minmax``, ``window`` with the image's own display window,
``fixed`` dividing by ``scale``), then applies ``(x - mean) / std``. Outputs are logits; the
platform applies the sigmoid (multi-label: one independent probability per finding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

NORMALIZATION_MODES: Final = ("percentile", "minmax", "window", "fixed")
INPUT_KINDS: Final = ("image", "slices", "volume")
IMAGE: Final = "image"
SLICES: Final = "slices"


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


@dataclass(frozen=True)
class ModelSpec:
    finding_codes: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int = 1
    normalization: Normalization = field(default_factory=Normalization)
    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    target_layer: str = ""
    input_kind: str = IMAGE

    @property
    def neighbours(self) -> int:
        """Slices either side of the read slice in a ``slices`` input (0 for ``image``)."""
        return self.channels // 2 if self.input_kind == SLICES else 0

    def threshold(self, code: str) -> float:
        return self.thresholds.get(code, 0.5)

    def as_json(self) -> dict[str, Any]:
        n = self.normalization
        data: dict[str, Any] = {
            "finding_codes": list(self.finding_codes),
            "input_size": list(self.input_size),
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
        if self.input_kind != IMAGE:  # specs of image models stay as they were registered
            data["input_kind"] = self.input_kind
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
    size = data.get("input_size")
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 4096 for s in size)
    ):
        raise SpecError(f"spec: input_size must be [rows, columns] of 8..4096, not {size!r}")
    kind = data.get("input_kind", IMAGE)
    if kind not in INPUT_KINDS:
        raise SpecError(f"spec: input_kind must be one of {INPUT_KINDS}, not {kind!r}")
    if kind == "volume":
        raise SpecError("spec: input_kind 'volume' is reserved; the platform cannot run it yet")
    channels = data.get("channels", 1)
    if kind == IMAGE and channels not in (1, 3):
        raise SpecError(f"spec: channels must be 1 or 3, not {channels!r}")
    if kind == SLICES and channels not in (1, 3, 5, 7):
        raise SpecError(
            f"spec: channels of a 'slices' input must be 1, 3, 5 or 7 (the slice and its "
            f"neighbours), not {channels!r}"
        )
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
        input_size=(int(size[0]), int(size[1])),
        channels=int(channels),
        normalization=norm,
        thresholds=MappingProxyType(thresholds),
        target_layer=target,
        input_kind=str(kind),
    )
