"""The demo command builds a complete study, and rebuilding it gives the same data."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pydicom
import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db import models

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import verify_chain
from studyplatform.reading.models import Enrolment
from studyplatform.studies.demo import ACCOUNTS, SITES, TRAINING_CASES
from studyplatform.studies.models import Case, Image, Study, StudyMembership, Truth

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, object]:
    """Everything the demo builds, by natural keys (primary keys change on rebuild)."""
    study = Study.objects.get(slug="demo")
    return {
        "study": (study.title, study.design, study.seed, study.washout_days, study.state),
        "arms": sorted(study.arms.values_list("name", "shows_ai")),
        "findings": sorted(study.finding_types.values_list("code", "clinically_significant")),
        "cases": sorted(
            Case.objects.filter(study=study).values_list(
                "case_id", "site__code", "modality", "manufacturer", "manufacturer_model"
            )
        ),
        "truth": sorted(
            Truth.objects.filter(case__study=study).values_list(
                "case__case_id", "finding_type__code", "present", "source"
            )
        ),
        "images": sorted(
            Image.objects.filter(case__study=study).values_list(
                "case__case_id", "sha256", "rows", "columns", "window_center", "window_width"
            )
        ),
        "users": sorted(
            get_user_model().objects.values_list("username", "is_staff", "groups__name")
        ),
        "enrolments": sorted(Enrolment.objects.filter(study=study).values_list("reader__code")),
        "members": sorted(
            StudyMembership.objects.filter(study=study).values_list("user__username", "role")
        ),
    }


def test_demo_twice_leaves_the_same_data(settings, roles, django_capture_on_commit_callbacks):
    settings.DEBUG = True
    call_command("demo", cases=6, stdout=StringIO())
    first = _snapshot()
    first_folder = Path(settings.MEDIA_ROOT) / "studies" / str(Study.objects.get().pk)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo", cases=6, stdout=StringIO())

    assert _snapshot() == first
    assert Study.objects.count() == 1
    assert Image.objects.count() == 6 + TRAINING_CASES
    assert not first_folder.exists(), "the replaced study's files must be removed"


def test_demo_builds_sites_modalities_truth_images_and_accounts(settings, roles):
    settings.DEBUG = True
    call_command("demo", cases=6, stdout=StringIO())
    study = Study.objects.get(slug="demo")

    assert set(study.cases.values_list("site__code", flat=True)) == {s.code for s in SITES}
    assert set(study.cases.values_list("modality", flat=True)) == {"CR", "DX"}
    assert Truth.objects.filter(case__study=study).count() == (6 + TRAINING_CASES) * 3
    assert study.cases.filter(training=True).count() == TRAINING_CASES
    for image in Image.objects.filter(case__study=study).select_related("case", "series"):
        header = pydicom.dcmread(image.original.path)
        assert header.Modality == image.case.modality
        assert header.Manufacturer == image.case.manufacturer
        assert header.Rows == image.rows
        assert Path(image.display.path).read_bytes().startswith(b"\x89PNG")
        # Recorded as an import records a DICOM file, so the DICOM export can reference it.
        assert image.source_format == "dicom"
        assert image.sop_instance_uid == header.SOPInstanceUID
        assert (image.series.study_uid, image.series.series_uid) == (
            header.StudyInstanceUID,
            header.SeriesInstanceUID,
        )
    for account in ACCOUNTS:
        user = authenticate(username=account.username, password=account.password)
        assert user is not None, account.username
        assert list(user.groups.values_list("name", flat=True)) == [account.role]


def test_demo_accounts_and_their_password_resets_are_audited(settings, roles):
    settings.DEBUG = True
    existing = get_user_model().objects.create_user("coordinator", password="own secret 42")

    call_command("demo", cases=3, stdout=StringIO())

    demo_events = AuditEvent.objects.filter(reason="demo accounts", actor__isnull=True)
    reset = demo_events.get(action=Action.USER_PASSWORD_CHANGE, object_id=str(existing.pk))
    assert reset.after == {"password": "changed"}
    created = set(demo_events.filter(action=Action.USER_CREATE).values_list("object_id", flat=True))
    others = get_user_model().objects.filter(username__in=[a.username for a in ACCOUNTS[1:]])
    assert created == {str(user.pk) for user in others}
    assert demo_events.filter(action=Action.USER_GROUPS_CHANGE).count() == len(ACCOUNTS)
    assert verify_chain().ok


def test_demo_refuses_published_passwords_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("demo", cases=3)
    assert not Study.objects.exists()


def test_simulated_reads_fill_both_arms_for_three_readers_reproducibly(settings, roles):
    from studyplatform.reading.models import Read, ReadFinding

    settings.DEBUG = True
    call_command("demo", cases=6, simulate_reads=True, stdout=StringIO())

    def answers():
        return sorted(
            ReadFinding.objects.values_list(
                "read__assignment__reader__code",
                "read__assignment__case__case_id",
                "read__assignment__arm__name",
                "finding_type__code",
                "present",
                "confidence",
            )
        )

    first = answers()
    assert Read.objects.count() == 3 * 6 * 2
    assert {row[0] for row in first} == {"R02", "R03", "R04"}
    assert all(0 <= row[5] <= 100 and row[4] == (row[5] >= 50) for row in first)
    assert not Read.objects.filter(submitted_at__lte=models.F("started_at")).exists()

    call_command("demo", cases=6, simulate_reads=True, stdout=StringIO())
    assert answers() == first


def test_the_demo_timeline_keeps_the_washout_and_audits_every_read_and_the_waiver(
    settings, roles, client
):
    from datetime import timedelta

    from django.urls import reverse

    from studyplatform.audit.models import AuditEvent
    from studyplatform.reading.demo import WAIVER_REASON
    from studyplatform.reading.models import Read, ReadingSession

    settings.DEBUG = True
    call_command("demo", cases=6, simulate_reads=True, stdout=StringIO())
    study = Study.objects.get(slug="demo")
    washout = timedelta(days=study.washout_days)
    for reader in ("R02", "R03", "R04"):
        one, two = ReadingSession.objects.filter(study=study, reader__code=reader).order_by(
            "number"
        )
        assert one.completed_at is not None and two.completed_at is not None
        assert two.available_from is not None and two.started_at is not None
        assert two.started_at >= max(two.available_from, one.completed_at + washout)
        assert two.completed_at >= two.available_from  # never completed before it opened
        assert study.opened_at is not None and one.started_at is not None
        assert one.started_at >= study.opened_at
    waived = ReadingSession.objects.get(study=study, reader__code="R01", number=2)
    assert waived.washout_waived and waived.washout_waiver_reason == WAIVER_REASON
    assert waived.washout_waived_by is not None
    event = AuditEvent.objects.get(study=study, action="session.washout_waived")
    assert event.reason == WAIVER_REASON and event.object_id == str(waived.pk)
    submits = AuditEvent.objects.filter(study=study, action="read.submit")
    assert submits.count() == Read.objects.filter(assignment__session__study=study).count()
    assert all(e.actor_id is not None for e in submits)
    client.force_login(get_user_model().objects.get(username="coordinator"))
    page = client.get(reverse("dashboard:study", args=["demo"])).content.decode()
    assert "waived by coordinator: " + WAIVER_REASON in page
    for kind in ("washout_violation", "sessions_overlap", "completed_before_open"):
        assert f'data-kind="{kind}"' not in page
