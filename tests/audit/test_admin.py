"""The admin audits its changes, freezes locked studies, and shows the trail read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from studyplatform.audit.models import AuditEvent
from studyplatform.audit.selectors import verify_chain
from studyplatform.audit.services import record
from studyplatform.studies.admin import TruthInline
from studyplatform.studies.models import Case, Site, Study, Truth
from tests.admin_forms import study_form_fields
from tests.factories import StudyFactory, TruthFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def _study_form(study, **changes):
    data = study_form_fields(study)
    for prefix in ("arms", "finding_types", "memberships"):
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    return data | changes


def test_admin_change_is_recorded_with_before_and_after_of_changed_fields(client, superuser):
    study = StudyFactory(title="Old title")
    client.force_login(superuser)
    url = reverse("admin:studies_study_change", args=[study.pk])
    page = client.get(url).content.decode()
    assert reverse("admin:studies_study_lock", args=[study.pk]) in page  # the signature pages
    assert reverse("admin:studies_study_finalize_truth", args=[study.pk]) in page
    response = client.post(url, _study_form(study, title="New title"))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="study.update")
    assert event.before == {"title": "Old title"} and event.after == {"title": "New title"}
    assert event.actor_username == "root" and event.study_id == study.pk
    assert event.reason == "admin"
    assert verify_chain().ok


def test_admin_add_and_delete_are_recorded(client, superuser):
    client.force_login(superuser)
    client.post(reverse("admin:studies_site_add"), {"code": "north", "name": "North"})
    site = Site.objects.get(code="north")
    client.post(reverse("admin:studies_site_delete", args=[site.pk]), {"post": "yes"})
    created, deleted = AuditEvent.objects.filter(object_type="studies.site").order_by("sequence")
    assert (created.action, (created.after or {})["code"]) == ("site.create", "north")
    assert (deleted.action, (deleted.before or {})["name"]) == ("site.delete", "North")
    assert deleted.after is None
    assert deleted.object_id == str(site.pk)


def test_locked_study_is_read_only_in_the_admin(client, superuser):
    study = StudyFactory(state="locked", opened_at=timezone.now(), locked_at=timezone.now())
    client.force_login(superuser)
    events = AuditEvent.objects.count()
    url = reverse("admin:studies_study_change", args=[study.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(url, _study_form(study, title="Changed")).status_code == 403
    delete = reverse("admin:studies_study_delete", args=[study.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Study.objects.get(pk=study.pk).title == study.title
    assert AuditEvent.objects.count() == events


def test_objects_of_a_locked_study_and_finalized_truth_are_read_only(superuser):
    request = RequestFactory().get("/")
    request.user = superuser
    truth = TruthFactory()
    case_admin = admin.site._registry[Case]
    truth_admin = admin.site._registry[Truth]
    inline = TruthInline(Case, admin.site)
    assert truth_admin.has_change_permission(request, truth)
    assert inline.has_change_permission(request, truth.case)
    # What the pages show follows the study's state (finalize_truth sets it; tested there).
    Study.objects.filter(pk=truth.case.study_id).update(truth_finalized_at=timezone.now())
    assert not truth_admin.has_change_permission(request, truth)
    assert not truth_admin.has_delete_permission(request, truth)
    assert not inline.has_add_permission(request, truth.case)
    assert case_admin.has_change_permission(request, truth.case)  # the case itself is not frozen
    Study.objects.filter(pk=truth.case.study_id).update(
        state="locked", opened_at=timezone.now(), locked_at=timezone.now()
    )
    assert not case_admin.has_change_permission(request, truth.case)


def test_audit_trail_admin_lists_events_read_only(client, superuser):
    record(actor=superuser, action="export.create", object_type="export", object_id="1")
    client.force_login(superuser)
    listing = client.get(reverse("admin:audit_auditevent_changelist") + "?action=export.create")
    assert listing.status_code == 200 and "export.create" in listing.content.decode()
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    event = AuditEvent.objects.get(action="export.create")
    detail = client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403


def test_audit_trail_admin_is_forbidden_without_permission(client):
    client.force_login(UserFactory(username="staff-without-perms", is_staff=True))
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403


def test_coordinators_and_statisticians_may_view_the_audit_trail_and_readers_may_not(client, roles):
    from django.contrib.auth.models import Group

    url = reverse("admin:audit_auditevent_changelist")
    for role, status in (("coordinator", 200), ("statistician", 200), ("reader", 403)):
        user = UserFactory(username=f"a-{role}", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        assert client.get(url).status_code == status, role
    assert client.get(reverse("admin:audit_signature_changelist")).status_code == 403
