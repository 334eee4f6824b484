"""A study pins one model version: pinned in the admin, checked at opening and before every
pre-read; the model a locked study pins is frozen; a locked study takes no pre-reads."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from studyplatform.audit.models import AuditEvent
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.services import pin_model, request_prereads
from studyplatform.prereads.tasks import run_preread_batch
from studyplatform.studies.guards import ProtocolFrozenError
from studyplatform.studies.models import Study, StudyState
from tests.audit.test_admin import _study_form
from tests.factories import AIModelFactory, UserFactory
from tests.prereads.conftest import register_random_model
from tests.reading.helpers import make_study as make_reader_study


def run(*args: str) -> str:
    out = StringIO()
    call_command("preread", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def lock(study: Study) -> None:
    now = timezone.now()
    Study.objects.filter(pk=study.pk).update(state=StudyState.LOCKED, opened_at=now, locked_at=now)


def test_preread_without_model_uses_the_pinned_model_not_a_newer_one(
    study_factory, ai_model, tmp_path
):
    study = study_factory(2, model=ai_model)
    register_random_model(tmp_path, name="newer")  # registered after the pin

    out = run(study.slug, "--sync")

    assert f"2 of 2 cases pre-read by {ai_model}" in out
    assert set(PreRead.objects.values_list("model__name", "status")) == {(ai_model.name, "done")}


def test_preread_refuses_a_pinned_model_registered_with_another_file_naming_both_hashes(
    study_factory, ai_model
):
    study = study_factory(1, model=ai_model)
    Study.objects.filter(pk=study.pk).update(ai_model_sha256="f" * 64)

    with pytest.raises(CommandError) as error:
        run(study.slug, "--sync")

    assert "f" * 64 in str(error.value) and ai_model.sha256 in str(error.value)
    assert not PreRead.objects.exists()


@pytest.mark.parametrize("mode", ["--sync", "--no-wait"])
def test_preread_of_a_locked_study_exits_non_zero_and_stores_nothing(study_factory, ai_model, mode):
    study = study_factory(2, model=ai_model)
    lock(study)

    with pytest.raises(CommandError, match=f"study {study.slug} is locked"):
        run(study.slug, mode)
    with pytest.raises(CommandError, match=f"study {study.slug} is locked"):
        run(study.slug, "--model", ai_model.name, mode)

    assert not PreRead.objects.exists()


def test_batch_task_of_a_study_locked_after_queueing_stores_nothing_and_marks_nothing(
    study_factory, ai_model
):
    study = study_factory(3, model=ai_model)
    request_prereads(study=study)
    ids = list(PreRead.objects.values_list("pk", flat=True))
    lock(study)

    first = run_preread_batch(preread_ids=ids)
    second = run_preread_batch(preread_ids=ids)

    assert (first["refused"], first["done"], first["failed"]) == (3, 0, 0)
    assert second["refused"] == 3
    assert set(PreRead.objects.values_list("status", "attempts", "heatmap")) == {
        (PreReadStatus.PENDING, 0, "")
    }
    assert not PreReadFinding.objects.exists()


def test_batch_task_of_an_open_study_still_runs(study_factory, ai_model):
    study = study_factory(1, model=ai_model)
    request_prereads(study=study)

    result = run_preread_batch(preread_ids=list(PreRead.objects.values_list("pk", flat=True)))

    assert (result["done"], result["refused"]) == (1, 0)


# --- Pinning in the admin, checked at opening ---------------------------------------------


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def test_coordinator_pins_a_registered_model_in_the_study_admin_with_its_sha256(client, superuser):
    study = make_reader_study(n_cases=2, n_readers=1, pin=False)
    model = AIModelFactory(sha256="a" * 64)
    client.force_login(superuser)
    url = reverse("admin:studies_study_change", args=[study.pk])
    page = client.get(url).content.decode()
    assert 'name="pinned_model"' in page and 'name="ai_model_sha256"' not in page

    response = client.post(url, _study_form(study, pinned_model=model.pk))

    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert (study.ai_model_name, study.ai_model_version, study.ai_model_sha256) == (
        model.name,
        model.version,
        "a" * 64,
    )
    event = AuditEvent.objects.get(action="study.update", reason="AI model pinned")
    assert event.after == {
        "ai_model_name": model.name,
        "ai_model_version": model.version,
        "ai_model_sha256": "a" * 64,
    }


def test_the_admin_offers_only_registered_models(client, superuser):
    study = make_reader_study(n_cases=2, n_readers=1, pin=False)
    client.force_login(superuser)
    url = reverse("admin:studies_study_change", args=[study.pk])

    response = client.post(url, _study_form(study, pinned_model=999_999))

    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Study.objects.get(pk=study.pk).has_pinned_model


def test_the_pinned_model_cannot_be_changed_in_the_admin_once_open(client, superuser):
    study = make_reader_study(n_cases=2, n_readers=1)
    call_command("randomize", study.slug, "--open", stdout=StringIO())
    study.refresh_from_db()
    pinned = study.ai_model_sha256
    other = AIModelFactory(sha256="b" * 64)
    client.force_login(superuser)
    url = reverse("admin:studies_study_change", args=[study.pk])
    assert 'name="pinned_model"' not in client.get(url).content.decode()

    client.post(url, _study_form(study, pinned_model=other.pk))

    assert Study.objects.get(pk=study.pk).ai_model_sha256 == pinned


def test_pin_model_service_refuses_an_opened_study(db):
    study = make_reader_study(n_cases=2, n_readers=1)
    call_command("randomize", study.slug, "--open", stdout=StringIO())

    with pytest.raises(ProtocolFrozenError, match="frozen"):
        pin_model(study=study, model=AIModelFactory())


def test_a_study_with_an_assisted_arm_and_no_pinned_model_does_not_open(db):
    study = make_reader_study(n_cases=2, n_readers=1, pin=False)

    with pytest.raises(CommandError, match="pins no AI model"):
        call_command("randomize", study.slug, "--open", stdout=StringIO())

    assert Study.objects.get(pk=study.pk).state == StudyState.DRAFT


def test_a_study_whose_pinned_model_is_not_registered_with_that_sha256_does_not_open(db):
    study = make_reader_study(n_cases=2, n_readers=1)
    registered = AIModel.objects.get(name=study.ai_model_name)
    Study.objects.filter(pk=study.pk).update(ai_model_sha256="c" * 64)

    with pytest.raises(CommandError) as error:
        call_command("randomize", study.slug, "--open", stdout=StringIO())

    assert "c" * 64 in str(error.value) and registered.sha256 in str(error.value)
    assert Study.objects.get(pk=study.pk).state == StudyState.DRAFT


# --- The model a study pins, in the AI model admin ----------------------------------------


def test_a_model_pinned_by_a_locked_study_cannot_be_edited_or_deleted(client, superuser):
    study = make_reader_study(n_cases=2, n_readers=1)
    model = AIModel.objects.get(name=study.ai_model_name)
    lock(study)
    client.force_login(superuser)
    change = reverse("admin:prereads_aimodel_change", args=[model.pk])
    delete = reverse("admin:prereads_aimodel_delete", args=[model.pk])

    page = client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change, {"name": "renamed"}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert AIModel.objects.filter(pk=model.pk, name=model.name).exists()


def test_a_model_pinned_by_an_open_study_only_can_still_be_deleted(client, superuser):
    model = AIModelFactory()
    study = make_reader_study(n_cases=2, n_readers=1, pin=False)
    pin_model(study=study, model=model)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:prereads_aimodel_delete", args=[model.pk]), {"post": "yes"}
    )

    assert response.status_code == 302 and not AIModel.objects.filter(pk=model.pk).exists()
