"""A test plug-in model: the demo CNN, slowed down per case, so a test can kill a worker mid-batch.

It is an ordinary factory-format model (``tests.prereads.slow_model:build``) with the shipped
demo weights; nothing in the platform knows that it is slow.
"""

from __future__ import annotations

import time

import torch

from studyplatform.prereads.demo_model import DemoCNN

SECONDS_PER_CASE = 0.3


class SlowCNN(DemoCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(SECONDS_PER_CASE * x.shape[0])
        return super().forward(x)


def build() -> SlowCNN:
    return SlowCNN()
