"""The demo model: the project's own small CNN for nodule, pneumothorax and effusion.

It is trained on procedurally generated phantoms (``studyplatform.studies.phantoms``) from seeds
that the demo study never uses, so the demo measures it on cases it has not seen. The trained
weights ship beside this module (``weights.pt``, a plain state_dict) with their spec
(``spec.json``); ``python manage.py train_demo_model`` regenerates them bit for bit on one
machine.

The network is deliberately tiny (about 25 k parameters) so that training takes minutes on a
laptop CPU and inference is dominated by I/O, not arithmetic: four 3x3 convolution blocks give
16x16 feature maps, a 1x1 convolution turns them into one score map per finding, and a smooth
maximum (log-sum-exp pooling) of each map is the finding's logit, so that a small, local lesion (a
nodule) can drive it. During training the score maps are also supervised with the phantoms'
lesion masks, which teaches the network where findings are (and makes its Grad-CAM meaningful)
far faster than image labels alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

HERE: Final = Path(__file__).resolve().parent
WEIGHTS: Final = HERE / "weights.pt"
SPEC: Final = HERE / "spec.json"
FACTORY: Final = "studyplatform.prereads.demo_model:build"
NAME: Final = "demo-cnn"
FINDINGS: Final = ("nodule", "pneumothorax", "effusion")
INPUT_SIZE: Final = 128
TARGET_LAYER: Final = "features.14"  # the last block's ReLU: 16x16 maps at 128 px input


class DemoCNN(nn.Module):
    def __init__(self, n_outputs: int = len(FINDINGS), width: int = 16) -> None:
        super().__init__()
        channels = [1, width // 2, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        # The last ReLU is features.14 (3 blocks of 4 modules, then conv, bn, relu): Grad-CAM's
        # target, 16x16 maps at 128 px input.
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(channels[-1], n_outputs, 1)

    def score_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-location logits, batch x findings x 16 x 16 (at 128 px input)."""
        maps: torch.Tensor = self.score(self.features(x))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_scores(self.score_maps(x))


SHARPNESS: Final = 4.0


def pool_scores(maps: torch.Tensor) -> torch.Tensor:
    """Log-sum-exp pooling: between the mean (sharpness 0) and the maximum (infinite)."""
    n = maps.shape[2] * maps.shape[3]
    flat = maps.flatten(2) * SHARPNESS
    pooled: torch.Tensor = (torch.logsumexp(flat, dim=2) - math.log(n)) / SHARPNESS
    return pooled


def build() -> nn.Module:
    """The factory the registry calls (``studyplatform.prereads.demo_model:build``)."""
    return DemoCNN()


def spec() -> dict[str, Any]:
    """The shipped spec: what the registry records for the demo model."""
    loaded: dict[str, Any] = json.loads(SPEC.read_text())
    return loaded
