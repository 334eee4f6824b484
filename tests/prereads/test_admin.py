"""Registering a model in the admin runs the registry's checks; others may not add models."""

from __future__ import annotations

import json

import torch

from studyplatform.prereads.demo_model import FACTORY, DemoCNN
from studyplatform.prereads.demo_model.training import demo_spec
from studyplatform.prereads.inference import model_digest
from studyplatform.prereads.models import AIModel
from tests.factories import UserFactory

URL = "/admin/prereads/aimodel/add/"


def form(path, **changes):
    data = {
        "name": "admin-cnn",
        "version": "1",
        "format": "factory",
        "path": str(path),
        "factory": FACTORY,
        "spec": json.dumps(demo_spec().as_json()),
    }
    data.update(changes)
    return data


def test_admin_registers_a_model_with_its_hash(db, client, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save(DemoCNN().state_dict(), weights)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(URL, form(weights))

    assert response.status_code == 302, response.content.decode()[:2000]
    model = AIModel.objects.get(name="admin-cnn")
    assert model.sha256 == model_digest(weights)
    assert model.finding_codes == ["nodule", "pneumothorax", "effusion"]


def test_admin_refuses_a_file_that_does_not_load(db, client, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.post(URL, form(bad))

    assert response.status_code == 200
    assert "not a loadable state_dict" in response.content.decode()
    assert not AIModel.objects.exists()


def test_staff_without_permission_cannot_add_models(db, client, tmp_path):
    client.force_login(UserFactory(is_staff=True))

    response = client.post(URL, form(tmp_path / "w.pt"))

    assert response.status_code == 403
    assert not AIModel.objects.exists()
