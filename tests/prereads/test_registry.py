"""The model registry: three plug-in forms load; bad, mismatched or changed files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from torch import nn

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import verify_chain
from studyplatform.prereads import demo_model
from studyplatform.prereads.demo_model import DemoCNN, pool_scores
from studyplatform.prereads.inference import (
    ModelRefusedError,
    cached_model,
    load_model,
    model_digest,
)
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.registry import RegistrationError, register_model
from studyplatform.prereads.spec import SpecError, parse_spec

FACTORY = demo_model.FACTORY


def spec_json(**changes) -> dict:
    spec = {
        "finding_codes": ["nodule", "pneumothorax", "effusion"],
        "input_size": [64, 64],
        "channels": 1,
        "normalization": {"mode": "percentile", "low": 1, "high": 99, "mean": 0.5, "std": 0.25},
        "thresholds": {"nodule": 0.4, "pneumothorax": 0.5, "effusion": 0.6},
        "target_layer": "features.14",
    }
    spec.update(changes)
    return spec


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "weights.pt"
    torch.save(DemoCNN().state_dict(), path)
    return path


class WithMap(nn.Module):
    """The TorchScript form: forward returns the logits and Grad-CAM's target map."""

    def __init__(self, net: DemoCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.net.features(x)
        return pool_scores(self.net.score(maps)), maps


def test_factory_model_registers_with_hash_and_spec(db, weights):
    model, created = register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )

    assert created
    assert model.sha256 == model_digest(weights)
    assert model.finding_codes == ["nodule", "pneumothorax", "effusion"]
    assert model.spec["thresholds"]["effusion"] == 0.6
    assert model.threshold == 0.4


def test_registering_the_same_file_again_changes_nothing(db, weights):
    first, _ = register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )
    again, created = register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )

    assert not created
    assert again.pk == first.pk
    assert AIModel.objects.count() == 1
    assert AuditEvent.objects.filter(action=Action.MODEL_REGISTER).count() == 1


def test_the_same_file_moved_is_followed_and_audited(db, weights, tmp_path):
    register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )
    moved = tmp_path / "elsewhere" / "weights.pt"
    moved.parent.mkdir()
    moved.write_bytes(weights.read_bytes())

    model, created = register_model(
        name="cnn", version="1", path=moved, fmt="factory", spec=spec_json(), factory=FACTORY
    )

    assert not created and model.path == str(moved)
    event = AuditEvent.objects.get(action=Action.MODEL_MOVE)
    assert (event.before, event.after) == ({"path": str(weights)}, {"path": str(moved)})


def test_file_that_is_not_a_model_is_refused(db, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"these are not weights")

    with pytest.raises(RegistrationError, match="not a loadable state_dict"):
        register_model(
            name="cnn", version="1", path=bad, fmt="factory", spec=spec_json(), factory=FACTORY
        )
    with pytest.raises(RegistrationError, match="not a loadable TorchScript file"):
        register_model(name="cnn", version="1", path=bad, fmt="torchscript", spec=spec_json())
    assert not AIModel.objects.exists()


def test_model_with_more_outputs_than_the_spec_has_findings_is_refused(db, weights):
    with pytest.raises(RegistrationError, match=r"spec lists 2 findings .* expected \(2, 2\)"):
        register_model(
            name="cnn",
            version="1",
            path=weights,
            fmt="factory",
            spec=spec_json(finding_codes=["nodule", "effusion"], thresholds={}),
            factory=FACTORY,
        )


def test_weights_that_do_not_fit_the_factory_network_are_refused(db, tmp_path):
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)

    with pytest.raises(RegistrationError, match="weights do not fit"):
        register_model(
            name="cnn", version="1", path=path, fmt="factory", spec=spec_json(), factory=FACTORY
        )


def test_unknown_target_layer_and_missing_factory_are_refused(db, weights):
    with pytest.raises(RegistrationError, match=r"'features\.99' is not a layer"):
        register_model(
            name="cnn",
            version="1",
            path=weights,
            fmt="factory",
            spec=spec_json(target_layer="features.99"),
            factory=FACTORY,
        )
    with pytest.raises(RegistrationError, match="needs --factory"):
        register_model(name="cnn", version="1", path=weights, fmt="factory", spec=spec_json())
    with pytest.raises(RegistrationError, match="cannot be imported"):
        register_model(
            name="cnn",
            version="1",
            path=weights,
            fmt="factory",
            spec=spec_json(),
            factory="no.such:f",
        )


def test_a_different_file_under_a_registered_version_is_refused(db, weights, tmp_path):
    register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(DemoCNN().state_dict(), other)

    with pytest.raises(RegistrationError, match="already registered with a different file"):
        register_model(
            name="cnn", version="1", path=other, fmt="factory", spec=spec_json(), factory=FACTORY
        )


def test_file_changed_since_registration_is_refused_before_running(db, weights):
    model, _ = register_model(
        name="cnn", version="1", path=weights, fmt="factory", spec=spec_json(), factory=FACTORY
    )
    torch.manual_seed(2)
    torch.save(DemoCNN().state_dict(), weights)  # replaced on disk after registration

    with pytest.raises(ModelRefusedError, match="changed since registration"):
        cached_model(
            key=model.pk,
            path=model.path,
            fmt=model.format,
            spec=parse_spec(model.spec),
            factory=model.factory,
            sha256=model.sha256,
        )


def test_torchscript_model_gives_the_same_outputs_as_its_factory_form(db, weights, tmp_path):
    net = DemoCNN()
    net.load_state_dict(torch.load(weights))
    scripted = torch.jit.trace(WithMap(net).eval(), torch.zeros(1, 1, 64, 64))
    path = tmp_path / "model.ts"
    scripted.save(str(path))

    model, _ = register_model(
        name="ts", version="1", path=path, fmt="torchscript", spec=spec_json()
    )
    spec = parse_spec(model.spec)
    ts = load_model(path=path, fmt="torchscript", spec=spec)
    factory = load_model(path=weights, fmt="factory", spec=spec, factory=FACTORY)
    x = torch.randn(3, 1, 64, 64)

    ts_logits, ts_map = ts.forward(x)
    f_logits, f_map = factory.forward(x)
    assert torch.allclose(ts_logits, f_logits, atol=1e-5)
    assert torch.allclose(ts_map, f_map, atol=1e-5)


def test_torchscript_model_without_the_feature_map_is_refused(db, weights, tmp_path):
    net = DemoCNN()
    scripted = torch.jit.trace(net.eval(), torch.zeros(1, 1, 64, 64))
    path = tmp_path / "logits-only.ts"
    scripted.save(str(path))

    with pytest.raises(RegistrationError, match=r"must return \(logits, target feature map\)"):
        register_model(name="ts", version="1", path=path, fmt="torchscript", spec=spec_json())


def test_monai_bundle_directory_loads_when_monai_is_installed(db, weights, tmp_path):
    pytest.importorskip("monai")
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(
        json.dumps({"network_def": {"_target_": "studyplatform.prereads.demo_model.DemoCNN"}})
    )
    (bundle / "models" / "model.pt").write_bytes(weights.read_bytes())

    model, _ = register_model(
        name="bundle", version="1", path=bundle, fmt="monai_bundle", spec=spec_json()
    )
    loaded = load_model(path=bundle, fmt="monai_bundle", spec=parse_spec(model.spec))
    factory = load_model(path=weights, fmt="factory", spec=parse_spec(model.spec), factory=FACTORY)
    x = torch.randn(2, 1, 64, 64)

    assert torch.allclose(loaded.forward(x)[0], factory.forward(x)[0], atol=1e-6)
    (bundle / "models" / "model.pt").write_bytes(b"changed")
    assert model_digest(bundle) != model.sha256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"finding_codes": []}, "finding_codes must be a non-empty list"),
        ({"input_size": [64]}, "input_size must be"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"normalization": {"mode": "zscore"}}, "normalization.mode must be one of"),
        ({"thresholds": {"nodule": 1.5}}, "thresholds must be within 0..1"),
        ({"thresholds": {"fracture": 0.5}}, "not in finding_codes"),
        ({"colour": "red"}, "unknown fields"),
    ],
)
def test_spec_errors_name_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_json(**change))


def test_register_model_command_registers_and_refuses_with_a_clear_message(
    db, weights, tmp_path, settings
):
    # The operator's tool: no allow-list, any path (the web admin's limits do not apply).
    settings.MODEL_FACTORIES = []
    settings.MODELS_ROOT = tmp_path / "models"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_json()))
    from io import StringIO

    out = StringIO()
    call_command(
        "register_model", "cnn", "1", str(weights), "--format", "factory",
        "--spec", str(spec_file), "--factory", FACTORY, stdout=out,
    )  # fmt: skip
    assert "Registered cnn 1 (factory" in out.getvalue()
    event = AuditEvent.objects.get(action=Action.MODEL_REGISTER)
    assert (event.actor_id, event.reason) == (None, "manage.py register_model")
    assert (event.after or {})["sha256"] == model_digest(weights)
    assert (event.after or {})["path"] == str(weights)
    assert verify_chain().ok

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CommandError, match=r"cnn 2 refused: .*bad\.pt: not a loadable state_dict"):
        call_command(
            "register_model", "cnn", "2", str(bad), "--format", "factory",
            "--spec", str(spec_file), "--factory", FACTORY,
        )  # fmt: skip
