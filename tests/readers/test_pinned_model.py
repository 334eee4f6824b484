"""The study's pinned model is the only one readers and the analysis see, even with a second
model registered and run on the study mid-study."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR, ensure_roles
from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.reading.models import ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Study, StudyMembership
from tests.factories import UserFactory
from tests.prereads.conftest import register_random_model
from tests.readers.test_views import _read_until, _submit
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    study = make_study(n_cases=6, n_readers=1, with_images=True, with_prereads=True, slug="pin")
    study.washout_days = 0  # session 2 opens at once: the reader reads both arms today
    study.save(update_fields=["washout_days"])
    randomize_study(study=study)
    return open_study(study=study)


def _challenger_prereads(study: Study, tmp_path: Path) -> None:
    """A second model registered mid-study pre-reads every case (for comparison)."""
    register_random_model(tmp_path, name="challenger")
    call_command("preread", study.slug, "--model", "challenger", "--sync", stdout=StringIO(),
                 stderr=StringIO())  # fmt: skip
    done = PreRead.objects.filter(
        case__study=study, model__name="challenger", status=PreReadStatus.DONE
    )
    assert done.count() == 6


def test_reader_sees_the_pinned_models_output_after_another_model_pre_reads(
    client, study, tmp_path
):
    reader = study.enrolments.get().reader
    client.force_login(reader.user)
    session = ReadingSession.objects.get(study=study, reader=reader, number=1)
    assignment = _read_until(client, session, "assisted")
    pinned = PreRead.objects.get(case=assignment.case, model__name=study.ai_model_name)

    _challenger_prereads(study, tmp_path)

    html = client.get(reverse("readers-assignment", args=[assignment.pk])).content.decode()
    assert "0.87" in html and study.ai_model_name in html and "challenger" not in html
    response = client.get(reverse("readers-heatmap", args=[assignment.pk]))
    assert response.status_code == 200
    with pinned.heatmap.open("rb") as handle:
        assert response.content == handle.read()


def test_other_reader_gets_no_heatmap_of_either_model(client, study, tmp_path):
    reader = study.enrolments.get().reader
    client.force_login(reader.user)
    session = ReadingSession.objects.get(study=study, reader=reader, number=1)
    assignment = _read_until(client, session, "assisted")
    _challenger_prereads(study, tmp_path)
    client.force_login(UserFactory(username="someone-else"))

    response = client.get(reverse("readers-heatmap", args=[assignment.pk]))

    assert response.status_code in {403, 404}


def test_analysis_and_dashboard_use_the_pinned_model_after_another_model_pre_reads(
    client, study, tmp_path
):
    reader = study.enrolments.get().reader
    client.force_login(reader.user)
    for number in (1, 2):
        session = ReadingSession.objects.get(study=study, reader=reader, number=number)
        for assignment in session.assignments.order_by("position", "step"):
            client.get(reverse("readers-assignment", args=[assignment.pk]))
            assert _submit(client, assignment, key=f"key-{assignment.pk:010d}").status_code == 201
    _challenger_prereads(study, tmp_path)

    out = tmp_path / "long.csv"
    call_command("export", study.slug, "--format", "long", "-o", str(out), stdout=StringIO())
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * 2 * 2
    assert {(r["finding"], r["ai_probability"]) for r in rows} == {
        ("nodule", "0.8731"),
        ("effusion", "0.1234"),
    }
    ensure_roles()
    coordinator = UserFactory(username="pin-coordinator", is_staff=True)
    coordinator.groups.set([Group.objects.get(name=COORDINATOR)])
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    client.force_login(coordinator)
    html = client.get(reverse("dashboard:study", args=[study.slug])).content.decode()
    assert "done: 6" in html  # the pinned model's six, not the twelve of both models
