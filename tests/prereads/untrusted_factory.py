"""A factory no allow-list names: a test checks that the admin never imports this module."""

from __future__ import annotations

from torch import nn

from studyplatform.prereads.demo_model import DemoCNN


def build() -> nn.Module:
    return DemoCNN()
