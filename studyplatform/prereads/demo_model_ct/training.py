"""Training the CT demo model on chest CT phantoms, deterministically, in about a minute on a CPU.

Seeds: training phantoms use ``TRAIN_BASE + seed * SPAN + i``, held-out ones ``HELD_OUT_BASE +
seed * SPAN + i``; the CT demo study uses ``study seed * 1000 + case number`` (about 2.0e10 with
the demo seed), so the model never sees a demo case. A phantom has no nodule with probability
``P_NORMAL``, else one to three; its vendor is drawn, so the model meets both scanners' noise,
kernel and slice thickness.

Training samples are 64 x 64 crops of the 2.5-D inputs (the network is fully convolutional and
its logit is a maximum, so crops and whole slices give comparable logits): every slice of each
nodule's extent, cropped around the nodule at a random offset, and random crops of slices
without a nodule. Inputs go through the same ``preprocess_stack`` and ``slice_inputs`` as at
inference. The held-out measure is the platform's own rule: each case's probability is the
maximum over all its slices, read whole, and its per-case AUC against "has a nodule".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from analysis.roc import empirical_auc
from studyplatform.prereads.demo_model.training import save_model, train_epoch
from studyplatform.prereads.demo_model_ct import (
    CHANNELS,
    FINDINGS,
    INPUT_SIZE,
    MAP_STRIDE,
    TARGET_LAYER,
    DemoCtCNN,
    pool_max,
)
from studyplatform.prereads.inference import preprocess_stack, slice_inputs
from studyplatform.prereads.spec import ModelSpec, parse_spec
from studyplatform.studies.phantoms_ct import VENDORS, CtPhantom, generate_ct_phantom

TRAIN_BASE: Final = 3_000_000_000
HELD_OUT_BASE: Final = 3_500_000_000
SPAN: Final = 1_000_000
P_NORMAL: Final = 0.4
SLICES: Final = 40
CROP: Final = 64
NEGATIVES_PER_PHANTOM: Final = 6
MASK_WEIGHT: Final = 1.0
MASK_POS_WEIGHT: Final = 10.0

FloatArray = npt.NDArray[np.float32]


def demo_ct_spec(threshold: float = 0.5) -> ModelSpec:
    return parse_spec(
        {
            "finding_codes": list(FINDINGS),
            "input_size": [INPUT_SIZE, INPUT_SIZE],
            "channels": CHANNELS,
            "input_kind": "slices",
            # HU / 500 + 1: (HU / 1000 - (-0.5)) / 0.5.
            "normalization": {"mode": "fixed", "scale": 1000.0, "mean": -0.5, "std": 0.5},
            "thresholds": {"nodule": threshold},
            "target_layer": TARGET_LAYER,
        }
    )


def phantom(seed: int, *, size: int = INPUT_SIZE, slices: int = SLICES) -> CtPhantom:
    """The phantom of one training or held-out seed: nodules and vendor drawn from the seed."""
    rng = np.random.default_rng([seed, 7])
    nodules = 0 if rng.random() < P_NORMAL else int(rng.integers(1, 4))
    vendor = int(rng.integers(len(VENDORS)))
    return generate_ct_phantom(
        seed=seed, n_nodules=nodules, vendor=vendor, size=size, slices=slices
    )


def seeds(*, seed: int, n: int, held_out: bool) -> range:
    if n > SPAN:
        raise ValueError(f"at most {SPAN} phantoms per set")
    base = (HELD_OUT_BASE if held_out else TRAIN_BASE) + seed * SPAN
    return range(base, base + n)


def nodule_map(p: CtPhantom, k: int, rows: int, columns: int) -> FloatArray:
    """Slice k's target score map: cells within reach of a nodule that crosses the slice."""
    grid = np.zeros((rows // MAP_STRIDE, columns // MAP_STRIDE), dtype=np.float32)
    centres = (np.arange(grid.shape[0]) * MAP_STRIDE + (MAP_STRIDE - 1) / 2).astype(np.float32)
    for n in p.nodules:
        if abs(k - n.slice) > n.depth:
            continue
        reach = max(n.radius_px, 1.0) + MAP_STRIDE / 2
        d = np.hypot(centres[:, None] - n.y, centres[None, :] - n.x)
        grid[d <= reach] = 1.0
    return grid


def make_set(*, seed: int, n: int, spec: ModelSpec) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Training crops (N x 3 x 64 x 64), their labels (N x 1) and target maps (N x 1 x 16 x 16)."""
    xs: list[FloatArray] = []
    ys: list[float] = []
    maps: list[FloatArray] = []
    cell = CROP // MAP_STRIDE
    for phantom_seed in seeds(seed=seed, n=n, held_out=False):
        p = phantom(phantom_seed)
        rng = np.random.default_rng([phantom_seed, 9])
        normalized = preprocess_stack(p.volume, spec)
        size = normalized.shape[1]
        crossing = p.nodule_slices()
        picks: list[tuple[int, int, int]] = []  # slice, top, left
        for nodule in p.nodules:
            for k in range(nodule.slice - nodule.depth, nodule.slice + nodule.depth + 1):
                top = int(np.clip(nodule.y - rng.integers(8, CROP - 8), 0, size - CROP))
                left = int(np.clip(nodule.x - rng.integers(8, CROP - 8), 0, size - CROP))
                # Whole cells: the crop's map is the slice's map cut at the same place.
                picks.append((k, top // MAP_STRIDE * MAP_STRIDE, left // MAP_STRIDE * MAP_STRIDE))
        empty = np.flatnonzero(~crossing)
        for k in rng.choice(empty, size=min(NEGATIVES_PER_PHANTOM, empty.size), replace=False):
            top, left = (
                int(v) * MAP_STRIDE for v in rng.integers(0, (size - CROP) // MAP_STRIDE, 2)
            )
            picks.append((int(k), top, left))
        for k, top, left in picks:
            full = nodule_map(p, k, size, size)
            cut = full[top // MAP_STRIDE : top // MAP_STRIDE + cell, left // MAP_STRIDE :][:, :cell]
            x = slice_inputs(normalized, [k], spec.neighbours)[0]
            xs.append(x[:, top : top + CROP, left : left + CROP])
            maps.append(cut[None])
            ys.append(float(cut.max()))
    return (
        np.stack(xs).astype(np.float32),
        np.array(ys, dtype=np.float32)[:, None],
        np.stack(maps).astype(np.float32),
    )


def case_probabilities(
    model: nn.Module, spec: ModelSpec, phantoms: list[CtPhantom]
) -> npt.NDArray[np.float64]:
    """Each case's probability: the maximum over its slices, each read whole (as the runner)."""
    model.eval()
    out = []
    with torch.no_grad():
        for p in phantoms:
            normalized = preprocess_stack(p.volume, spec)
            x = slice_inputs(normalized, range(normalized.shape[0]), spec.neighbours)
            logits = model(torch.from_numpy(x))
            out.append(float(torch.sigmoid(logits).max()))
    return np.array(out, dtype=np.float64)


@dataclass(frozen=True)
class CtTrainingReport:
    weights: Path
    spec: Path
    held_out_auc: float
    n_train: int
    n_samples: int
    n_held_out: int
    epochs: int
    seconds: float


def train(
    *,
    out_dir: Path,
    seed: int = 0,
    n_train: int = 120,
    n_held_out: int = 60,
    epochs: int = 8,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> CtTrainingReport:
    """Train from scratch; write ``weights.pt`` and ``spec.json`` into ``out_dir``."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    spec = demo_ct_spec()
    log(f"drawing {n_train} training and {n_held_out} held-out CT phantoms ...")
    x_train, y_train, m_train = make_set(seed=seed, n=n_train, spec=spec)
    held_out = [phantom(s) for s in seeds(seed=seed, n=n_held_out, held_out=True)]
    truth = np.array([bool(p.nodules) for p in held_out])
    n = len(x_train)
    log(f"  {n} training crops ({int(y_train.sum())} with a nodule) in "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip

    model = DemoCtCNN()
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=1e-4)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=4e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    mask_loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(MASK_POS_WEIGHT))
    order_rng = np.random.default_rng([seed, 11])
    xt, yt, mt = torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(m_train)
    auc = float("nan")

    def loss_of(maps: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> Any:
        return loss_fn(pool_max(maps), y) + MASK_WEIGHT * mask_loss_fn(maps, m)

    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(order_rng.permutation(n))
        loss = train_epoch(
            model,
            tensors=(xt, yt, mt),
            order=order,
            batch_size=batch_size,
            optimizer=optimizer,
            schedule=schedule,
            loss_of=loss_of,
        )
        line = f"epoch {epoch:2d}/{epochs}  loss {loss:.4f}"
        # (A tiny held-out set may lack a class: then no AUC.)
        if epoch == epochs and truth.any() and not truth.all():
            scores = case_probabilities(model, spec, held_out)
            auc = float(empirical_auc(scores[truth], scores[~truth]))
            line += f"  held-out per-case AUC {auc:.3f}"
        log(line + f"  ({time.perf_counter() - started:.0f} s)")

    weights, spec_path = save_model(model, spec, out_dir)
    return CtTrainingReport(
        weights=weights,
        spec=spec_path,
        held_out_auc=auc,
        n_train=n_train,
        n_samples=n,
        n_held_out=n_held_out,
        epochs=epochs,
        seconds=time.perf_counter() - started,
    )
