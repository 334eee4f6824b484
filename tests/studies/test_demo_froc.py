"""The demo's nodules carry lesion locations, and its simulated readers mark them."""

from __future__ import annotations

import math
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from studyplatform.reading.models import ReadFinding
from studyplatform.studies.models import Truth

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_demo_nodules_are_lesions_and_simulated_marks_are_scored(settings, roles, tmp_path):
    settings.DEBUG = True
    call_command("demo", cases=6, simulate_reads=True, stdout=StringIO())

    nodules = Truth.objects.filter(finding_type__code="nodule", present=True)
    assert nodules.exists()
    for truth in nodules:
        (lesion,) = truth.location
        assert lesion["lesion"] == 1 and lesion["radius"] > 2
        image = truth.case.images.get(position=lesion["image"])
        assert 0 <= lesion["x"] < image.columns and 0 <= lesion["y"] < image.rows
    assert not Truth.objects.filter(finding_type__code="nodule", present=False).exclude(
        location=None
    )
    marked = ReadFinding.objects.filter(finding_type__code="nodule").exclude(marks=[])
    assert marked.exists() and all(f.present for f in marked)
    assert not ReadFinding.objects.exclude(finding_type__code="nodule").exclude(marks=[])

    path = tmp_path / "marks.csv"
    call_command("export", "demo", "--format", "marks", "-o", str(path), stdout=StringIO())
    marks = pd.read_csv(path, keep_default_na=False)
    assert {"LL", "NL"} <= set(marks["kind"])
    centres: dict[str, dict[str, Any]] = {t.case.case_id: (t.location or [{}])[0] for t in nodules}
    for mark in marks[marks["kind"] == "LL"].itertuples():
        lesion = centres[str(mark.case)]
        assert math.hypot(mark.x - lesion["x"], mark.y - lesion["y"]) <= lesion["radius"]
    assert np.all(marks["rating"].between(0, 100))
