"""Concealment of the allocation: no seed and no unopened arm reaches staff before the lock.

Study ``alpha`` (tests/security/conftest.py) is open: its reader has opened some cases, most are
unopened. Its coordinator walks every admin list, every page of alpha's allocation, assignments
and audit events, and the dashboard: none shows the seed or the arm of an unopened assignment.
An unblinding (statistician, with a reason) or the lock reveals them, checked against the
commitment the trail recorded at randomization.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.audit.signatures import LOCK_MEANING, lock_study
from studyplatform.reading.models import AllocationRecord, Assignment
from studyplatform.studies.concealment import CONCEALED
from tests.reading.helpers import PASSWORD
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

ADMIN_LISTS = (
    "audit/auditevent",
    "studies/study",
    "reading/allocationrecord",
    "reading/assignment",
    "reading/readingsession",
    "reading/read",
)


def _client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def _pages(world: World) -> list[str]:
    alpha = world.alpha
    pages = [f"/admin/{model}/" for model in ADMIN_LISTS]
    pages += [f"/admin/reading/assignment/?session__study__id__exact={alpha.pk}&all="]
    pages.append(f"/admin/studies/study/{alpha.pk}/change/")
    pages.append(f"/admin/reading/allocationrecord/{AllocationRecord.objects.get(study=alpha).pk}/")
    pages += [
        f"/admin/audit/auditevent/{pk}/change/"
        for pk in AuditEvent.objects.filter(study=alpha).values_list("pk", flat=True)
    ]
    pages += [reverse("dashboard:studies"), reverse("dashboard:study", args=["alpha"])]
    return pages


def test_a_coordinators_pages_show_neither_the_seed_nor_an_unopened_arm(world):
    coordinator = _client(world, "coordinator")
    seed = str(world.alpha.seed)
    for page in _pages(world):
        response = coordinator.get(page, follow=True)
        assert response.status_code == 200, page
        assert seed not in response.content.decode(), page
    unopened = Assignment.objects.filter(session__study=world.alpha, opened_at__isnull=True)
    assert unopened.exists()
    for assignment in unopened:
        html = coordinator.get(f"/admin/reading/assignment/{assignment.pk}/change/")
        text = html.content.decode()
        assert html.status_code == 200 and CONCEALED in text
        assert "assisted" not in text  # nor "unassisted"
    opened = coordinator.get(f"/admin/reading/assignment/{world.assisted.pk}/change/")
    assert "assisted" in opened.content.decode()  # an opened case's arm is no secret


def test_the_assignment_list_offers_no_arm_filter(world):
    listing = _client(world, "coordinator").get("/admin/reading/assignment/").content.decode()
    assert "arm__name" not in listing


def test_a_study_created_in_the_admin_keeps_its_seed_off_the_audit_pages(world):
    coordinator = _client(world, "coordinator")
    form = coordinator.get("/admin/studies/study/add/").content.decode()
    assert 'name="seed"' not in form  # the server draws it; nobody types it
    response = coordinator.post(
        "/admin/studies/study/add/",
        {
            "slug": "gamma",
            "title": "Gamma",
            "design": "crossover",
            "washout_days": 28,
            "readers_per_case": 1,
            "split_plot_groups": 2,
            "primary_endpoint": "auc",
            "ni_margin": "0.05",
            "rating_scale": "probability",
            "contradiction_rule": "reject",
            "froc_rule": "inside",
            "arms-TOTAL_FORMS": 0,
            "arms-INITIAL_FORMS": 0,
            "finding_types-TOTAL_FORMS": 0,
            "finding_types-INITIAL_FORMS": 0,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    from studyplatform.studies.models import Study

    gamma = Study.objects.get(slug="gamma")
    event = AuditEvent.objects.get(study=gamma, action="study.create")
    assert isinstance(event.after, dict) and event.after["seed"] == gamma.seed  # stored, chained
    page = coordinator.get(f"/admin/audit/auditevent/{event.pk}/change/").content.decode()
    assert str(gamma.seed) not in page and CONCEALED in page


def test_a_statistician_unblinds_with_a_reason_and_the_seed_matches_its_commitment(world):
    with pytest.raises(CommandError, match="statistician"):
        call_command(
            "unblind", "alpha", "--user", "alpha-coordinator", "--reason", "curious", stdout=None
        )
    with pytest.raises(CommandError, match="reason"):
        call_command("unblind", "alpha", "--user", "alpha-statistician", "--reason", " ")
    assert not AuditEvent.objects.filter(action="study.unblind").exists()
    call_command(
        "unblind", "alpha", "--user", "alpha-statistician", "--reason", "safety review (DSMB)"
    )
    event = AuditEvent.objects.get(action="study.unblind")
    assert event.reason == "safety review (DSMB)"
    assert event.after == {"seed": world.alpha.seed, "seed_matches_commitment": True}
    record = AllocationRecord.objects.get(study=world.alpha)
    coordinator = _client(world, "coordinator")
    page = coordinator.get(f"/admin/reading/allocationrecord/{record.pk}/change/")
    assert str(world.alpha.seed) in page.content.decode()
    unopened = Assignment.objects.filter(session__study=world.alpha, opened_at__isnull=True)[0]
    shown = _client(world, "coordinator").get(f"/admin/reading/assignment/{unopened.pk}/change/")
    assert unopened.arm.name in shown.content.decode()
    with pytest.raises(CommandError, match="already"):
        call_command("unblind", "alpha", "--user", "root", "--reason", "again")


def test_the_lock_reveals_the_seed_and_opens_results_to_coordinators(world):
    coordinator = _client(world, "coordinator")
    assert coordinator.get(reverse("dashboard:report", args=["alpha"])).status_code == 403
    lock_study(
        study=world.alpha, user=world.users["coordinator"], password=PASSWORD, meaning=LOCK_MEANING
    )
    event = AuditEvent.objects.filter(study=world.alpha, action="study.update").latest("sequence")
    assert isinstance(event.after, dict)
    assert event.after["seed"] == world.alpha.seed and event.after["seed_matches_commitment"]
    record = AllocationRecord.objects.get(study=world.alpha)
    page = coordinator.get(f"/admin/reading/allocationrecord/{record.pk}/change/")
    assert str(world.alpha.seed) in page.content.decode()
    assert coordinator.get(reverse("dashboard:report", args=["alpha"])).status_code == 200
    long = coordinator.post(reverse("dashboard:export", args=["alpha"]), {"format": "long"})
    assert long.status_code == 200


def test_a_prospective_arrival_answers_and_records_no_arm(
    world, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from studyplatform.reading.services import open_study, randomize_study
    from studyplatform.studies.concealment import arm_commitment
    from studyplatform.studies.models import MemberRole, StudyMembership
    from tests.reading.helpers import make_study
    from tests.studies.import_fixtures import pydicom_file

    study = make_study(n_cases=2, n_readers=2, design="prospective", slug="pros")
    randomize_study(study=study)
    open_study(study=study)
    coordinator = world.users["coordinator"]
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    client = _client(world, "coordinator")
    image = SimpleUploadedFile(
        "a.dcm", pydicom_file("MR_small.dcm").read_bytes(), content_type="application/dicom"
    )
    metadata = {"case_id": "NEW-1", "site": study.cases.first().site.code}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/studies/{study.slug}/cases/",
            {"metadata": json.dumps(metadata), "images": [image]},
        )
    assert response.status_code == 201, response.content
    assert "assisted" not in response.content.decode()
    made = Assignment.objects.filter(case__case_id="NEW-1", session__study=study)
    assert made.exists()
    event = AuditEvent.objects.filter(study=study, reason="prospective arrival").latest("sequence")
    assert isinstance(event.after, dict) and "arm" not in event.after
    assert event.after["arm_hmac"] == arm_commitment(study.seed, "NEW-1", made[0].arm.name)
    listing = client.get(f"/admin/reading/assignment/?session__study__id__exact={study.pk}")
    assert ">assisted<" not in listing.content.decode()
    dashboard = client.get(reverse("dashboard:study", args=["pros"])).content.decode()
    assert "Running counts per arm are not shown" in dashboard
