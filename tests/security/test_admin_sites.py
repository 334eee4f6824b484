"""Sites are shared between studies: coordinators see the sites their studies use or own and
change only those no other study uses or owns; a site that no study uses or owns is read-only to
them; superusers see and change every site (tests/audit/test_admin_frozen.py keeps the refusal
for a site of a locked study)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.studies.models import Site
from tests.factories import CaseFactory, SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sites(world):
    """``west`` is alpha's alone, ``east`` beta's alone; ``north`` is used by both."""
    CaseFactory(study=world.alpha, case_id="W001", site=SiteFactory(code="west", name="West"))
    CaseFactory(study=world.beta, case_id="E001", site=SiteFactory(code="east", name="East"))
    return {code: Site.objects.get(code=code) for code in ("west", "east", "north")}


def _change(site: Site) -> str:
    return reverse("admin:studies_site_change", args=[site.pk])


def test_coordinators_list_only_the_sites_of_their_studies(client, world, sites):
    client.force_login(world.users["coordinator"])
    listing = client.get(reverse("admin:studies_site_changelist"))
    assert listing.status_code == 200
    shown = {site.code for site in listing.context["cl"].result_list}
    assert shown == {"west", "north", "south"}
    client.force_login(world.users["superuser"])
    listing = client.get(reverse("admin:studies_site_changelist"))
    assert {"west", "east", "north"} <= {site.code for site in listing.context["cl"].result_list}


def test_a_site_only_another_study_uses_is_not_found_and_not_changed(client, world, sites):
    client.force_login(world.users["coordinator"])
    page = client.get(_change(sites["east"]))
    assert page.status_code == 302 and page["Location"] == reverse("admin:index")
    before = AuditEvent.objects.count()
    crafted = client.post(_change(sites["east"]), {"code": "east", "name": "Renamed"})
    assert crafted.status_code == 302 and crafted["Location"] == reverse("admin:index")
    assert Site.objects.get(code="east").name == "East"
    assert AuditEvent.objects.count() == before


def test_a_site_shared_with_another_study_is_read_only_and_a_crafted_post_is_refused(
    client, world, sites
):
    client.force_login(world.users["coordinator"])
    page = client.get(_change(sites["north"]))
    assert page.status_code == 200
    assert not page.context["has_change_permission"] and 'name="name"' not in page.content.decode()
    name = sites["north"].name
    before = AuditEvent.objects.count()
    crafted = client.post(_change(sites["north"]), {"code": "north", "name": "Renamed"})
    assert crafted.status_code == 403
    assert Site.objects.get(code="north").name == name
    assert AuditEvent.objects.count() == before


def test_a_coordinator_renames_a_site_only_their_studies_use(client, world, sites):
    client.force_login(world.users["coordinator"])
    data = {"code": "west", "name": "West wing", "study": world.alpha.pk}
    response = client.post(_change(sites["west"]), data)
    assert response.status_code == 302
    assert Site.objects.get(code="west").name == "West wing"
    assert AuditEvent.objects.filter(action="site.update").exists()


def test_a_site_token_makes_a_site_one_of_the_studys(client, world, sites):
    from studyplatform.studies.services import issue_site_token

    token_only = SiteFactory(code="tokened", name="Tokened")
    issue_site_token(study=world.beta, site=token_only, name="beta PACS")
    client.force_login(world.users["other_coordinator"])
    assert client.get(_change(token_only)).status_code == 200
    client.force_login(world.users["coordinator"])
    assert client.get(_change(token_only)).status_code == 302  # not found: beta's


def test_coordinators_add_sites_and_superusers_change_shared_ones(client, world, sites):
    client.force_login(world.users["coordinator"])
    added = client.post(
        reverse("admin:studies_site_add"), {"code": "new", "name": "New", "study": world.alpha.pk}
    )
    assert added.status_code == 302 and Site.objects.get(code="new").study == world.alpha
    # A site no study uses yet stays its study's coordinators' to correct.
    fixed = client.post(
        _change(Site.objects.get(code="new")),
        {"code": "new", "name": "Newer", "study": world.alpha.pk},
    )
    assert fixed.status_code == 302 and Site.objects.get(code="new").name == "Newer"
    client.force_login(world.users["superuser"])
    response = client.post(_change(sites["north"]), {"code": "north", "name": "North campus"})
    assert response.status_code == 302 and Site.objects.get(code="north").name == "North campus"


def test_a_new_site_of_another_study_is_not_renamed_through_the_admin(client, world, sites):
    """Before any case or token uses it, a site belongs to the study it was added for: another
    study's coordinator neither renames it nor hands a new site to that study."""
    client.force_login(world.users["other_coordinator"])
    data = {"code": "fresh", "name": "Fresh", "study": world.beta.pk}
    assert client.post(reverse("admin:studies_site_add"), data).status_code == 302
    fresh = Site.objects.get(code="fresh")
    assert fresh.study == world.beta
    client.force_login(world.users["coordinator"])
    before = AuditEvent.objects.count()
    page = client.get(_change(fresh))
    assert page.status_code == 302 and page["Location"] == reverse("admin:index")
    crafted = client.post(_change(fresh), {"code": "fresh", "name": "Renamed"})
    assert crafted.status_code == 302 and crafted["Location"] == reverse("admin:index")
    assert Site.objects.get(code="fresh").name == "Fresh" and AuditEvent.objects.count() == before
    hijack = {"code": "other", "name": "Other", "study": world.beta.pk}
    refused = client.post(reverse("admin:studies_site_add"), hijack)
    assert refused.status_code == 200 and not Site.objects.filter(code="other").exists()
    assert "study" in refused.context["adminform"].form.errors


def test_a_site_nobody_owns_or_uses_is_read_only_to_staff(client, world, sites):
    orphan = SiteFactory(code="orphan", name="Orphan")
    client.force_login(world.users["coordinator"])
    page = client.get(_change(orphan))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    crafted = client.post(_change(orphan), {"code": "orphan", "name": "Mine", "study": ""})
    assert crafted.status_code == 403 and Site.objects.get(code="orphan").name == "Orphan"
