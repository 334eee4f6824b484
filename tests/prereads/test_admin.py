"""Registering a model in the admin: only allow-listed factories and files under MODELS_ROOT.

A model is code, so the admin loads only what an operator put in place; anything else is refused
before any import or file access, with one message that reveals nothing about the server's files.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import verify_chain
from studyplatform.prereads.demo_model import FACTORY, DemoCNN
from studyplatform.prereads.demo_model.training import demo_spec
from studyplatform.prereads.inference import model_digest
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.registry import REFUSED_SOURCE
from studyplatform.studies.models import Study
from tests.factories import UserFactory

URL = "/admin/prereads/aimodel/add/"
UNTRUSTED = "tests.prereads.untrusted_factory"


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


def errors(response) -> list[str]:
    """The form's error messages as the page shows them."""
    page = response.content.decode()
    found = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", " ", item)).strip() for item in found]


@pytest.fixture
def models_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    settings.MODELS_ROOT = root
    settings.MODEL_FACTORIES = [FACTORY]
    return root


@pytest.fixture
def weights(models_root: Path) -> Path:
    path = models_root / "w.pt"
    torch.save(DemoCNN().state_dict(), path)
    return path


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def coordinator(db, roles):
    user = UserFactory(username="coord", is_staff=True)
    user.groups.add(Group.objects.get(name="coordinator"))
    return user


def test_admin_registers_an_allow_listed_model_under_models_root_and_audits_it(
    client, coordinator, weights
):
    client.force_login(coordinator)

    response = client.post(URL, form(weights))

    assert response.status_code == 302, errors(response)
    model = AIModel.objects.get(name="admin-cnn")
    assert model.sha256 == model_digest(weights)
    assert model.finding_codes == ["nodule", "pneumothorax", "effusion"]
    event = AuditEvent.objects.get(action=Action.MODEL_REGISTER)
    assert (event.actor_username, event.object_id) == ("coord", str(model.pk))
    assert event.reason == "admin"
    assert event.after == {**(event.after or {}), "sha256": model.sha256, "factory": FACTORY}
    assert verify_chain().ok


def test_admin_takes_a_path_relative_to_models_root(client, superuser, weights):
    client.force_login(superuser)

    response = client.post(URL, form("w.pt"))

    assert response.status_code == 302, errors(response)
    assert AIModel.objects.get().path == str(weights.resolve())


@pytest.mark.parametrize(
    "factory",
    [
        "os:abort",  # would kill the web worker
        "studyplatform.studies.demo:build_demo_study",  # would create the demo accounts
        UNTRUSTED,  # not module:function at all
        f"{UNTRUSTED}:build",  # a harmless network, but nobody allow-listed it
    ],
)
def test_admin_refuses_a_factory_outside_the_allow_list_without_importing_it(
    client, superuser, weights, factory
):
    sys.modules.pop(UNTRUSTED, None)
    users = get_user_model().objects.count()
    client.force_login(superuser)

    response = client.post(URL, form(weights, factory=factory))

    assert response.status_code == 200
    assert errors(response) == [REFUSED_SOURCE]
    assert UNTRUSTED not in sys.modules
    assert not AIModel.objects.exists() and not Study.objects.exists()
    assert get_user_model().objects.count() == users
    assert not AuditEvent.objects.filter(action=Action.MODEL_REGISTER).exists()


def test_admin_refuses_a_factory_for_another_format(client, superuser, models_root):
    bundle = models_root / "bundle"
    bundle.mkdir()
    client.force_login(superuser)

    response = client.post(URL, form(bundle, format="monai_bundle", factory="os:abort"))

    assert errors(response) == [REFUSED_SOURCE]


@pytest.mark.parametrize("fmt", ["factory", "torchscript", "monai_bundle"])
def test_admin_refuses_paths_outside_models_root_in_every_format(
    client, superuser, models_root, tmp_path, fmt
):
    outside = tmp_path / "outside.pt"
    torch.save(DemoCNN().state_dict(), outside)
    (models_root / "link.pt").symlink_to(outside)
    client.force_login(superuser)
    factory = FACTORY if fmt == "factory" else ""

    for path in (outside, "../outside.pt", models_root / "sub" / ".." / ".." / "outside.pt",
                 "link.pt", models_root, "/etc/passwd"):  # fmt: skip
        response = client.post(URL, form(path, format=fmt, factory=factory))
        assert response.status_code == 200
        assert REFUSED_SOURCE in errors(response), path
    assert not AIModel.objects.exists()


def test_refusal_is_the_same_for_an_existing_and_a_missing_file(
    client, superuser, models_root, tmp_path
):
    secret = tmp_path / "secret.pt"
    secret.write_bytes(b"PK\x03\x04 private bytes")
    client.force_login(superuser)

    existing = client.post(URL, form(secret))
    missing = client.post(URL, form(tmp_path / "no-such.pt"))

    assert errors(existing) == errors(missing) == [REFUSED_SOURCE]
    page = existing.content.decode()
    # the file's first bytes, not a random CSRF token that happens to hold "PK"
    assert "PK\x03\x04" not in page and "private bytes" not in page and "no such" not in page


def test_a_file_under_models_root_that_does_not_load_is_refused_without_its_bytes(
    client, superuser, models_root
):
    bad = models_root / "bad.pt"
    bad.write_bytes(b"junk bytes")
    client.force_login(superuser)

    response = client.post(URL, form(bad))

    assert response.status_code == 200
    (message,) = errors(response)
    assert message == "admin-cnn 1 refused: not a loadable state_dict"
    assert not re.search(r"0x[0-9a-f]{6,}", response.content.decode())
    assert "invalid load key" not in response.content.decode()
    assert not AIModel.objects.exists()


def test_a_network_that_fails_on_the_dummy_input_names_no_exception_text(
    client, superuser, weights
):
    spec = demo_spec().as_json() | {"channels": 3}  # the demo network takes one channel
    client.force_login(superuser)

    response = client.post(URL, form(weights, spec=json.dumps(spec)))

    (message,) = errors(response)
    assert "model fails on a dummy input of shape (2, 3, 128, 128) from the spec" in message
    assert message.endswith("(an 'image' model takes rank 4: batch x channels x rows x columns)")


def test_staff_without_permission_cannot_add_models(db, client, models_root, weights):
    client.force_login(UserFactory(is_staff=True))

    response = client.post(URL, form(weights))

    assert response.status_code == 403
    assert not AIModel.objects.exists()
