"""The admin shows staff only their own studies' objects, and offers only those in its forms."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import RequestFactory

from studyplatform.studies.models import MemberRole, Study, StudyMembership

pytestmark = pytest.mark.django_db


def _options(html: str, name: str) -> set[str]:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no {name} select"
    return set(re.findall(r">([^<]+)</option>", select.group(1))) - {"---------"}


def test_lists_hold_only_the_staff_members_studies(client, world):
    client.force_login(world.users["other_coordinator"])
    cases = client.get("/admin/studies/case/").content.decode()
    reads = client.get("/admin/reading/read/").content.decode()
    assert "beta" in cases and "alpha" not in cases
    assert "alpha" not in reads
    client.force_login(world.users["coordinator"])
    assert "alpha" in client.get("/admin/studies/case/").content.decode()


def test_forms_offer_only_the_staff_members_studies(client, world):
    client.force_login(world.users["other_coordinator"])
    html = client.get("/admin/studies/case/add/").content.decode()
    assert _options(html, "study") == {"beta"}
    html = client.get("/admin/studies/truth/add/").content.decode()
    assert all(not option.startswith("alpha") for option in _options(html, "case"))
    client.force_login(world.users["superuser"])
    html = client.get("/admin/studies/case/add/").content.decode()
    assert _options(html, "study") == {"alpha", "beta"}


def test_staff_who_add_a_study_coordinate_it(world):
    model_admin = admin.site._registry[Study]
    request = RequestFactory().post("/admin/studies/study/add/")
    request.user = world.users["other_coordinator"]
    study = Study(slug="gamma", title="A new study", seed=1)
    model_admin.save_model(request, study, form=None, change=False)
    membership = StudyMembership.objects.get(study=study)
    assert (membership.user, membership.role) == (request.user, MemberRole.COORDINATOR)
    assert study in model_admin.get_queryset(request)
