"""``manage.py preread``: runs a study's pre-reads and shows progress; refuses bad input."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from studyplatform.prereads.models import PreRead, PreReadStatus


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("preread", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_preread_sync_runs_every_case_and_shows_progress(study_factory, ai_model):
    study = study_factory(3)

    out, err = run(study.slug, "--model", ai_model.name, "--sync", "--batch-size", "2")

    assert f"{study.slug}: 3 of 3 cases pre-read by {ai_model}" in out
    assert "[" in err and "2/3" in err and "3/3" in err  # one progress line per batch
    assert set(PreRead.objects.values_list("status", flat=True)) == {PreReadStatus.DONE}


def test_preread_again_changes_nothing(study_factory, ai_model):
    study = study_factory(2, model=ai_model)
    run(study.slug, "--sync")

    out, _ = run(study.slug, "--sync")

    assert "2 of 2 cases" in out
    assert set(PreRead.objects.values_list("attempts", flat=True)) == {1}


def test_preread_no_wait_only_queues(study_factory, ai_model, django_capture_on_commit_callbacks):
    study = study_factory(2, model=ai_model)

    with django_capture_on_commit_callbacks(execute=False):
        out, _ = run(study.slug, "--no-wait")

    assert f"Queued 2 pre-reads of {study.slug}" in out
    assert PreRead.objects.filter(status=PreReadStatus.PENDING).count() == 2


def test_preread_refuses_unknown_study_and_model(study_factory, ai_model):
    study = study_factory(1)
    with pytest.raises(CommandError, match="no study 'nope'"):
        run("nope", "--sync")
    with pytest.raises(CommandError, match="no model named 'nope'"):
        run(study.slug, "--model", "nope", "--sync")


def test_preread_of_a_study_that_pins_no_model_says_to_pin_one(study_factory, ai_model):
    study = study_factory(1)

    with pytest.raises(CommandError, match=f"study {study.slug} pins no AI model"):
        run(study.slug, "--sync")

    assert not PreRead.objects.exists()
