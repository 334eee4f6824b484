"""Grad-CAM against two references: captum's LayerGradCam, and a per-sample brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studyplatform.prereads.demo_model import DemoCNN, pool_scores
from studyplatform.prereads.demo_model.training import demo_spec
from studyplatform.prereads.gradcam import combine, grad_cam, heatmap_image
from studyplatform.prereads.inference import LoadedModel


@pytest.fixture
def model_and_input() -> tuple[DemoCNN, torch.Tensor]:
    torch.manual_seed(7)
    model = DemoCNN().eval()
    # Non-trivial batch-norm statistics, so the maps differ between channels.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model, torch.randn(3, 1, 128, 128)


def own_cams(model: DemoCNN, x: torch.Tensor) -> torch.Tensor:
    loaded = LoadedModel(
        module=model, spec=demo_spec(), device=torch.device("cpu"), returns_features=False,
        target=model.features[14],
    )  # fmt: skip
    logits, fmap = loaded.forward(x.clone().requires_grad_(True))
    return grad_cam(logits, fmap)


def test_grad_cam_matches_captum_layer_grad_cam(model_and_input):
    captum_attr = pytest.importorskip("captum.attr")
    model, x = model_and_input
    ours = own_cams(model, x)

    reference = captum_attr.LayerGradCam(model, model.features[14])
    for k in range(3):
        expected = reference.attribute(x, target=k, relu_attributions=True)[:, 0]
        assert torch.allclose(ours[:, k], expected, rtol=1e-4, atol=1e-6), k
    assert ours.abs().sum() > 0


def test_grad_cam_matches_a_per_sample_brute_force(model_and_input):
    model, x = model_and_input
    ours = own_cams(model, x).numpy()

    for i in range(x.shape[0]):
        # The map as an explicit leaf, one sample and one finding at a time, weights in numpy.
        fmap = model.features(x[i : i + 1]).detach().requires_grad_(True)
        for k in range(3):
            logit = pool_scores(model.score(fmap))[0, k]
            (grad,) = torch.autograd.grad(logit, fmap)
            a, g = fmap[0].detach().numpy(), grad[0].numpy()
            alpha = g.reshape(g.shape[0], -1).mean(axis=1)
            expected = np.maximum(np.tensordot(alpha, a, axes=1), 0.0)
            np.testing.assert_allclose(ours[i, k], expected, rtol=1e-4, atol=1e-6)


def test_heatmap_is_resized_to_the_displayed_image_and_keeps_the_hot_spot_in_place():
    cam = np.zeros((1, 16, 16), dtype=np.float32)
    cam[0, 4, 12] = 1.0  # row 4, column 12 of 16

    image = heatmap_image(combine(cam, np.array([1.0])), (512, 384))

    assert image.shape == (512, 384) and image.dtype == np.uint8
    row, col = np.unravel_index(image.argmax(), image.shape)
    assert abs(row - (4 + 0.5) * 512 / 16) <= 16
    assert abs(col - (12 + 0.5) * 384 / 16) <= 12
    assert image.max() >= 240  # the peak falls between output pixels


def test_combined_heatmap_is_weighted_by_probability():
    cams = np.ones((2, 4, 4), dtype=np.float32)
    cams[1, 0, 0] = 3.0

    combined = combine(cams, np.array([0.2, 0.9]))

    assert combined[0, 0] == pytest.approx(0.9)
    assert combined[1, 1] == pytest.approx(0.3)  # finding 2 is 1/3 of its peak there
