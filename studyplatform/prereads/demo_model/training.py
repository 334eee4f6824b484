"""Training the demo model on phantoms, deterministically, in a few minutes on a CPU.

Seeds: training phantoms use ``TRAIN_BASE + seed * SPAN + i`` and the held-out set
``HELD_OUT_BASE + seed * SPAN + i``; the demo study uses ``study seed * 1000 + case number`` with
the demo seed 20261128 (about 2.0e10), so the model never sees a demo case. Each finding is present
independently with probability 0.4, and modality and vendor style are drawn per phantom, so the
model meets all three sites' processing.

Phantoms are drawn at 256 px (four times cheaper than the demo's 512 px; lesion geometry scales
with the image) and go through the same ``preprocess`` as at inference.

Nodules (3-9 px across at the 128 px input) are learned last: their held-out AUC stays near
chance for the first five epochs and climbs to about 0.82 by epoch 11 of the default 14, so
shorter runs (fewer phantoms or epochs) say little about nodules. Pneumothorax and effusion pass
0.9 within four epochs.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from analysis.roc import empirical_auc
from studyplatform.prereads.demo_model import (
    FINDINGS,
    INPUT_SIZE,
    TARGET_LAYER,
    DemoCNN,
    pool_scores,
)
from studyplatform.prereads.inference import preprocess
from studyplatform.prereads.spec import ModelSpec, parse_spec
from studyplatform.studies.phantoms import MODALITIES, N_MANUFACTURER_STYLES, generate_phantom

TRAIN_BASE: Final = 1_000_000_000
HELD_OUT_BASE: Final = 1_500_000_000
SPAN: Final = 1_000_000
PREVALENCE: Final = 0.4
PHANTOM_SIZE: Final = 256
MASK_WEIGHT: Final = 1.0
MASK_POS_WEIGHT: Final = (20.0, 4.0, 2.0)  # nodule, pneumothorax, effusion


def demo_spec(thresholds: dict[str, float] | None = None) -> ModelSpec:
    return parse_spec(
        {
            "finding_codes": list(FINDINGS),
            "input_size": [INPUT_SIZE, INPUT_SIZE],
            "channels": 1,
            "normalization": {"mode": "percentile", "low": 1, "high": 99, "mean": 0.5, "std": 0.25},
            "thresholds": thresholds or dict.fromkeys(FINDINGS, 0.5),
            "target_layer": TARGET_LAYER,
        }
    )


def phantom_seeds(*, seed: int, n: int, held_out: bool) -> range:
    base = (HELD_OUT_BASE if held_out else TRAIN_BASE) + seed * SPAN
    if n > SPAN:
        raise ValueError(f"at most {SPAN} phantoms per set")
    return range(base, base + n)


MAP_SIZE: Final = INPUT_SIZE // 8  # the score maps' resolution


def make_set(
    *, seed: int, n: int, held_out: bool, spec: ModelSpec
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Inputs (n x 1 x H x W), labels (n x 3) and lesion masks (n x 3 x 16 x 16)."""
    xs = np.empty((n, spec.channels, *spec.input_size), dtype=np.float32)
    ys = np.zeros((n, len(FINDINGS)), dtype=np.float32)
    masks = np.zeros((n, len(FINDINGS), MAP_SIZE, MAP_SIZE), dtype=np.float32)
    cell = PHANTOM_SIZE // MAP_SIZE
    for i, phantom_seed in enumerate(phantom_seeds(seed=seed, n=n, held_out=held_out)):
        rng = np.random.default_rng([phantom_seed, 7])
        present = frozenset(f for f in FINDINGS if rng.random() < PREVALENCE)
        phantom = generate_phantom(
            seed=phantom_seed,
            findings=present,
            size=PHANTOM_SIZE,
            modality=MODALITIES[int(rng.integers(len(MODALITIES)))],
            manufacturer_style=int(rng.integers(N_MANUFACTURER_STYLES)),
        )
        xs[i] = preprocess(phantom.pixels, spec)
        ys[i] = [f in present for f in FINDINGS]
        for k, code in enumerate(FINDINGS):
            if code in phantom.masks:
                # A map cell is positive when any of its pixels is inside the lesion.
                grid = phantom.masks[code].reshape(MAP_SIZE, cell, MAP_SIZE, cell)
                masks[i, k] = grid.any(axis=(1, 3))
    return xs, ys, masks


@dataclass(frozen=True)
class TrainingReport:
    weights: Path
    spec: Path
    held_out_auc: dict[str, float]
    n_train: int
    n_held_out: int
    epochs: int
    seconds: float


def predict(model: nn.Module, xs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(xs), 64):
            out.append(torch.sigmoid(model(torch.from_numpy(xs[start : start + 64]))).numpy())
    return np.concatenate(out).astype(np.float64)


def auc_per_finding(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.float32]
) -> dict[str, float]:
    return {
        code: float(
            empirical_auc(probabilities[labels[:, k] == 1, k], probabilities[labels[:, k] == 0, k])
        )
        for k, code in enumerate(FINDINGS)
    }


class ScoreMapModel(Protocol):
    """A demo model: trainable, with per-cell score maps (logits) of a batch."""

    def train(self, mode: bool = True) -> Any: ...
    def score_maps(self, x: torch.Tensor) -> torch.Tensor: ...


def train_epoch(
    model: ScoreMapModel,
    *,
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    order: torch.Tensor,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    loss_of: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any],
) -> float:
    """One pass over the samples in ``order``; the mean loss.

    ``tensors`` are the inputs, labels and lesion masks; ``loss_of(maps, labels, masks)`` scores
    a batch's score maps (the label loss through the pooled logit plus where the lesion is).
    """
    inputs, labels, masks = tensors
    model.train()
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad()
        # Any: torch's Tensor.backward carries no annotations.
        loss: Any = loss_of(model.score_maps(inputs[batch]), labels[batch], masks[batch])
        loss.backward()
        optimizer.step()
        schedule.step()
        total += float(loss.detach()) * len(batch)
    return total / len(order)


def save_model(model: nn.Module, spec: ModelSpec, out_dir: Path) -> tuple[Path, Path]:
    """Write ``weights.pt`` (the state dict) and ``spec.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "weights.pt"
    buffer = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buffer)
    weights.write_bytes(buffer.getvalue())
    spec_path = out_dir / "spec.json"
    spec_path.write_text(json.dumps(spec.as_json(), indent=2) + "\n")
    return weights, spec_path


def train(
    *,
    out_dir: Path,
    seed: int = 0,
    n_train: int = 2000,
    n_held_out: int = 400,
    epochs: int = 14,
    batch_size: int = 32,
    log: Callable[[str], None] = print,
) -> TrainingReport:
    """Train from scratch and write ``weights.pt`` and ``spec.json`` into ``out_dir``."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    spec = demo_spec()
    log(f"drawing {n_train} training and {n_held_out} held-out phantoms ...")
    x_train, y_train, m_train = make_set(seed=seed, n=n_train, held_out=False, spec=spec)
    x_test, y_test, _ = make_set(seed=seed, n=n_held_out, held_out=True, spec=spec)
    log(f"  done in {time.perf_counter() - started:.0f} s")

    model = DemoCNN()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((n_train + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    # Lesion cells are rare on the 16x16 maps (a nodule covers one to four of 256): weigh them up,
    # or the maps learn "nothing anywhere" for small lesions.
    mask_loss_fn = nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor(MASK_POS_WEIGHT, dtype=torch.float32).view(-1, 1, 1)
    )
    order_rng = np.random.default_rng([seed, 11])
    xt, yt, mt = torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(m_train)

    def loss_of(maps: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> Any:
        # Image labels through the pooled logit, plus where the lesion is on the score maps.
        return loss_fn(pool_scores(maps), y) + MASK_WEIGHT * mask_loss_fn(maps, m)

    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(order_rng.permutation(n_train))
        loss = train_epoch(
            model,
            tensors=(xt, yt, mt),
            order=order,
            batch_size=batch_size,
            optimizer=optimizer,
            schedule=schedule,
            loss_of=loss_of,
        )
        aucs = auc_per_finding(predict(model, x_test), y_test)
        log(
            f"epoch {epoch:2d}/{epochs}  loss {loss:.4f}  held-out AUC "
            + "  ".join(f"{k} {v:.3f}" for k, v in aucs.items())
            + f"  ({time.perf_counter() - started:.0f} s)"
        )

    weights, spec_path = save_model(model, spec, out_dir)
    return TrainingReport(
        weights=weights,
        spec=spec_path,
        held_out_auc=aucs,
        n_train=n_train,
        n_held_out=n_held_out,
        epochs=epochs,
        seconds=time.perf_counter() - started,
    )
