"""The demo command pre-reads every demo case with the shipped model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding
from studyplatform.prereads.selectors import preread_progress
from studyplatform.studies.demo import TRAINING_CASES
from studyplatform.studies.models import Study


@pytest.mark.django_db
def test_demo_pre_reads_every_case_with_the_demo_model(settings, roles):
    settings.DEBUG = True
    call_command("demo", cases=3, stdout=StringIO())

    study = Study.objects.get(slug="demo")
    n = 3 + TRAINING_CASES  # the training cases too: their feedback may show the AI's answer
    assert preread_progress(study).as_dict() == {
        "cases": n, "pending": 0, "running": 0, "done": n, "failed": 0, "missing": 0,
    }  # fmt: skip
    assert list(AIModel.objects.values_list("name", flat=True)) == ["demo-cnn"]
    assert PreRead.objects.count() == n
    assert PreReadFinding.objects.count() == n * 3
