"""Small TorchScript models for the ``volume`` input kind, defined and initialised here.

``TinyVolumeCNN`` is one 3-D convolution that passes bright voxels only (above the middle of the
spec's window) and a linear head over their mean: its Grad-CAM map is the bright voxels
themselves, so a test can say where each slice's heatmap must be lit. The others are what a
user might wrongly register as a volume model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

SPEC: dict[str, Any] = {
    "finding_codes": ["nodule"],
    "input_size": [8, 16, 16],
    "input_kind": "volume",
    # -1200..400 HU to 0..1: air 0.125, +200 HU 0.875; the convolution passes above 0.5.
    "normalization": {"mode": "hu_window", "center": -400, "width": 1600},
}


class TinyVolumeCNN(nn.Module):
    def __init__(self, findings: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3, padding=1)
        self.head = nn.Linear(2, findings)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0, 1, 1, 1] = 1.0
            self.conv.bias.fill_(-0.5)
            self.head.weight.fill_(40.0)
            self.head.bias.fill_(3.0)  # confident: the maps are weighted by it

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = torch.relu(self.conv(x))
        return self.head(fmap.mean(dim=(2, 3, 4))), fmap


class FlatMapCNN(TinyVolumeCNN):
    """Returns its map averaged over depth: 4-D, so Grad-CAM could not place it in 3-D."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = torch.relu(self.conv(x))
        return self.head(fmap.mean(dim=(2, 3, 4))), fmap.mean(dim=2)


class PlaneCNN(nn.Module):
    """A 2-D network: takes batch x channels x rows x columns, not a volume."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.head = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = torch.relu(self.conv(x))
        return self.head(fmap.mean(dim=(2, 3))), fmap


def save(module: nn.Module, folder: Path, name: str, spec: dict[str, Any] | None = None) -> Path:
    """The module as a TorchScript file plus ``name.json`` (its spec) in ``folder``."""
    path = folder / f"{name}.pt"
    torch.jit.save(torch.jit.script(module.eval()), str(path))  # type: ignore[no-untyped-call]
    (folder / f"{name}.json").write_text(json.dumps(spec or SPEC))
    return path
