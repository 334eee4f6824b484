"""The shipped demo model: small, honest about its data, deterministic, and useful."""

from __future__ import annotations

import numpy as np
import torch

from studyplatform.prereads import demo_model
from studyplatform.prereads.demo_model import training
from studyplatform.prereads.inference import load_model, model_digest
from studyplatform.prereads.spec import parse_spec
from studyplatform.studies.demo import DEMO_SEED


def test_shipped_weights_are_small_and_match_the_shipped_spec():
    assert demo_model.WEIGHTS.stat().st_size < 1_000_000
    spec = parse_spec(demo_model.spec())
    assert spec == training.demo_spec(dict(spec.thresholds))

    loaded = load_model(
        path=demo_model.WEIGHTS, fmt="factory", spec=spec, factory=demo_model.FACTORY
    )

    assert loaded.target is loaded.module.get_submodule(demo_model.TARGET_LAYER)


def test_training_seeds_never_touch_the_demo_study():
    demo = range(DEMO_SEED * 1000, DEMO_SEED * 1000 + 1000)
    for held_out in (False, True):
        seeds = training.phantom_seeds(seed=0, n=100_000, held_out=held_out)
        assert seeds.stop <= demo.start or seeds.start >= demo.stop
    train = training.phantom_seeds(seed=0, n=100_000, held_out=False)
    test = training.phantom_seeds(seed=0, n=100_000, held_out=True)
    assert train.stop <= test.start


def test_training_is_deterministic_given_a_seed(tmp_path):
    torch.set_num_threads(1)
    first = training.train(out_dir=tmp_path / "a", n_train=8, n_held_out=8, epochs=1, log=str)
    second = training.train(out_dir=tmp_path / "b", n_train=8, n_held_out=8, epochs=1, log=str)

    assert model_digest(first.weights) == model_digest(second.weights)


def test_shipped_model_separates_fresh_phantoms(db):
    spec = parse_spec(demo_model.spec())
    loaded = load_model(
        path=demo_model.WEIGHTS, fmt="factory", spec=spec, factory=demo_model.FACTORY
    )
    # Fresh phantoms: the held-out range beyond what the shipped report used.
    xs, ys, _ = training.make_set(seed=7, n=48, held_out=True, spec=spec)

    with torch.no_grad():
        probabilities = torch.sigmoid(loaded.module(torch.from_numpy(xs))).double().numpy()

    aucs = training.auc_per_finding(probabilities, ys)
    assert aucs["effusion"] > 0.8 and aucs["pneumothorax"] > 0.8, aucs
    # Nodules are small and some are faint on purpose: clearly better than chance, not perfect.
    assert aucs["nodule"] > 0.7, aucs
    assert np.all((probabilities >= 0) & (probabilities <= 1))
