"""A model's intended use: set by ``register_model`` and in the admin, audited, frozen once a
study that pins the model opens, and reported in the submission checklist."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.dashboard.exports.checklist import build_checklist
from studyplatform.prereads.demo_model import DemoCNN
from studyplatform.prereads.models import AIModel
from studyplatform.studies.models import Study, StudyState
from tests.dashboard.builders import build_study
from tests.prereads.test_registry import FACTORY, spec_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec_and_weights(tmp_path: Path, settings) -> tuple[Path, Path]:
    settings.MODEL_FACTORIES = []
    settings.MODELS_ROOT = tmp_path / "models"
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(DemoCNN().state_dict(), weights)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_json()))
    return spec, weights


def _register(spec: Path, weights: Path, *extra: str) -> str:
    out = StringIO()
    call_command(
        "register_model", "cnn", "1", str(weights), "--format", "factory", "--spec", str(spec),
        "--factory", FACTORY, *extra, stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_register_model_stores_the_intended_use_and_refuses_a_change_once_a_study_opens(
    spec_and_weights,
) -> None:
    spec, weights = spec_and_weights
    out = _register(
        spec, weights, "--intended-use", "Flags nodules on chest radiographs.",
        "--target-population", "Adults", "--modality", "DX chest PA",
    )  # fmt: skip
    assert "Intended use of cnn 1 stored." in out
    model = AIModel.objects.get(name="cnn")
    assert (model.intended_use, model.target_population, model.modality, model.intended_users) == (
        "Flags nodules on chest radiographs.", "Adults", "DX chest PA", ""
    )  # fmt: skip
    event = AuditEvent.objects.get(action=Action.MODEL_INTENDED_USE)
    assert (event.before or {})["intended_use"] == ""
    assert (event.after or {})["modality"] == "DX chest PA"
    # The same again changes nothing; only the given fields change.
    assert "stored" not in _register(spec, weights, "--modality", "DX chest PA")
    _register(spec, weights, "--clinical-setting", "Emergency department")
    model.refresh_from_db()
    assert (model.clinical_setting, model.modality) == ("Emergency department", "DX chest PA")

    Study.objects.create(
        slug="pinned", title="P", seed=1, state=StudyState.OPEN, opened_at=timezone.now(),
        ai_model_name="cnn",
        ai_model_version="1", ai_model_sha256=model.sha256,
    )  # fmt: skip
    with pytest.raises(CommandError, match="pinned by the open or locked study pinned"):
        _register(spec, weights, "--intended-use", "Something else")
    model.refresh_from_db()
    assert model.intended_use == "Flags nodules on chest radiographs."
    assert AuditEvent.objects.filter(action=Action.MODEL_INTENDED_USE).count() == 2


def test_intended_use_edited_in_the_admin_fills_the_checklist_until_the_study_opens(
    client, django_user_model
) -> None:
    built = build_study("iu", n_readers=2, n_cases=6, findings=("nodule",))
    model = AIModel.objects.get(name=built.study.ai_model_name)
    items = {i.topic: i for i in build_checklist(built.study).items}
    assert items["Intended use"].needs_human
    assert "intended use, target population" in items["Intended use"].missing

    client.force_login(django_user_model.objects.create_superuser("root", "r@x.org", "pw"))
    url = reverse("admin:prereads_aimodel_change", args=[model.pk])
    use = {
        "intended_use": "Second reader for lung nodules on chest radiographs.",
        "target_population": "Adults", "modality": "CR/DX chest PA",
        "clinical_setting": "Outpatient radiology", "intended_users": "Radiologists",
    }  # fmt: skip
    # The study is open: the pinned model's intended use is frozen.
    response = client.post(url, use)
    assert response.status_code == 200
    assert "The intended use is frozen: the open or locked study iu pins this model" in (
        response.content.decode()
    )
    assert AIModel.objects.get(pk=model.pk).intended_use == ""

    Study.objects.filter(pk=built.study.pk).update(state=StudyState.DRAFT)
    assert client.post(url, use).status_code == 302
    model.refresh_from_db()
    assert model.intended_use == use["intended_use"] and model.intended_users == "Radiologists"
    event = AuditEvent.objects.get(action=Action.MODEL_INTENDED_USE)
    assert event.reason == "admin" and (event.after or {})["clinical_setting"] == (
        "Outpatient radiology"
    )
    items = {i.topic: i for i in build_checklist(built.study).items}
    assert not items["Intended use"].needs_human
    assert f"Intended use: {use['intended_use']}" in items["Intended use"].answer
    assert "Target population: Adults" in items["Intended use"].answer


def test_the_demo_model_has_an_intended_use() -> None:
    from studyplatform.prereads.registry import register_demo_model

    model = register_demo_model()
    assert model.intended_use.startswith("Flags lung nodule, pneumothorax and pleural effusion")
    assert AIModel.objects.get(pk=model.pk).modality == "CR/DX chest radiograph, frontal view"
