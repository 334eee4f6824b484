"""The CT demo model: the project's own slice-wise (2.5-D) lung nodule detector.

Each input is one axial slice with the slice below and the slice above as channels (the spec's
``input_kind`` ``slices``, 3 channels), in Hounsfield units scaled by ``fixed`` normalization
(HU / 500 + 1: lung about -0.7, soft tissue about 1.1). A vessel's cross-section looks like a
nodule on one slice but moves or stretches on its neighbours, while a nodule stays put: the
neighbours are what let so small a network tell them apart.

Four 3x3 convolution blocks (two 2x2 max-pools) give score maps at a quarter of the input's
resolution; the slice's logit is the maximum of its map, so one nodule anywhere drives it and
an input of any size gives a comparable logit. During training the map is also supervised with
the nodules' discs (as the chest-radiograph demo model is), which makes its Grad-CAM point at the
nodule. The case's probability is the maximum over its slices (the platform's rule for a
``slices`` model). Weights (``weights.pt``, a plain state_dict, about 30 k parameters) and
``spec.json`` ship here; ``python manage.py train_demo_model --ct`` regenerates them.

Measured: held-out per-case AUC 0.796 on 60 fresh CT phantoms (seed 0, 120 training phantoms,
8 epochs; the case's probability the maximum over its 40 slices), and 0.84 s for the pre-read of
a 64-slice case on one CPU thread (``benchmarks/ct_preread.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

HERE: Final = Path(__file__).resolve().parent
WEIGHTS: Final = HERE / "weights.pt"
SPEC: Final = HERE / "spec.json"
FACTORY: Final = "studyplatform.prereads.demo_model_ct:build"
NAME: Final = "demo-ct-cnn"
FINDINGS: Final = ("nodule",)
INPUT_SIZE: Final = 128
CHANNELS: Final = 3  # the slice and one neighbour either side
TARGET_LAYER: Final = "features.13"  # the last block's ReLU: maps at a quarter of the input
MAP_STRIDE: Final = 4


class DemoCtCNN(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        channels = [CHANNELS, width // 2, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(),
            ]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        # 2 blocks of 4 modules, then 2 of 3: the last ReLU is features.13.
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(channels[-1], len(FINDINGS), 1)

    def score_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-location logits, batch x findings x rows/4 x columns/4."""
        maps: torch.Tensor = self.score(self.features(x))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_max(self.score_maps(x))


def pool_max(maps: torch.Tensor) -> torch.Tensor:
    """A slice's logit per finding: the maximum of its score map."""
    pooled: torch.Tensor = maps.flatten(2).amax(dim=2)
    return pooled


def build() -> nn.Module:
    """The factory the registry calls (``studyplatform.prereads.demo_model_ct:build``)."""
    return DemoCtCNN()


def spec() -> dict[str, Any]:
    """The shipped spec: what the registry records for the CT demo model."""
    loaded: dict[str, Any] = json.loads(SPEC.read_text())
    return loaded
