"""The demo command pre-reads every demo case with the shipped model."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding
from studyplatform.prereads.selectors import preread_progress
from studyplatform.studies.models import Study


@pytest.mark.django_db
def test_demo_pre_reads_every_case_with_the_demo_model(settings, roles):
    settings.DEBUG = True
    call_command("demo", cases=3, stdout=StringIO())

    study = Study.objects.get(slug="demo")
    assert preread_progress(study).as_dict() == {
        "cases": 3, "pending": 0, "running": 0, "done": 3, "failed": 0, "missing": 0,
    }  # fmt: skip
    assert list(AIModel.objects.values_list("name", flat=True)) == ["demo-cnn"]
    assert PreRead.objects.count() == 3
    assert PreReadFinding.objects.count() == 3 * 3
