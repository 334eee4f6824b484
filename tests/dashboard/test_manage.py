"""The coordinator's pages through HTTP: readers, enrolment, groups, sites, site tokens."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import cast

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN, ensure_roles
from studyplatform.audit.models import Action, AuditEvent
from studyplatform.reading.models import Enrolment, Reader
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Site, SiteToken, Study, StudyMembership
from studyplatform.studies.services.tokens import authenticate_site_token
from tests.factories import UserFactory
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db

PAGES = ("manage", "manage_readers", "manage_training", "manage_sites", "manage_tokens")


@dataclass
class Trial:
    alpha: Study
    beta: Study
    coordinator: User
    statistician: User
    other_coordinator: User
    reader: User


def _staff(username: str, role: str, study: Study, member_role: str) -> User:
    user = cast(User, UserFactory(username=username, is_staff=True))
    user.groups.set([Group.objects.get(name=role)])
    StudyMembership.objects.create(study=study, user=user, role=member_role)
    return user


@pytest.fixture
def trial(db) -> Trial:
    ensure_roles()
    alpha = make_study(n_cases=4, n_readers=1, slug="alpha")
    beta = make_study(n_cases=2, n_readers=1, slug="beta")
    return Trial(
        alpha=alpha,
        beta=beta,
        coordinator=_staff("alpha-coordinator", COORDINATOR, alpha, MemberRole.COORDINATOR),
        statistician=_staff("alpha-stat", STATISTICIAN, alpha, MemberRole.STATISTICIAN),
        other_coordinator=_staff("beta-coordinator", COORDINATOR, beta, MemberRole.COORDINATOR),
        reader=Reader.objects.get(code="alpha-R1").user,
    )


def _url(name: str, *args: object) -> str:
    return reverse(f"dashboard:{name}", args=["alpha", *args])


@pytest.mark.parametrize("page", PAGES)
def test_only_the_studys_coordinators_open_the_manage_pages(client, trial, page):
    assert client.get(_url(page)).status_code == 302  # anonymous: to the log-in page
    assert client.get(_url(page))["Location"].startswith(reverse("login"))
    for user in (trial.statistician, trial.reader, trial.other_coordinator):
        client.force_login(user)
        assert client.get(_url(page)).status_code == 403, user
    client.force_login(trial.coordinator)
    assert client.get(_url(page)).status_code == 200
    assert client.get(reverse(f"dashboard:{page}", args=["nosuch"])).status_code == 404


def test_the_dashboard_links_the_manage_pages_for_coordinators_only(client, trial):
    client.force_login(trial.coordinator)
    assert _url("manage") in client.get(reverse("dashboard:study", args=["alpha"])).content.decode()
    client.force_login(trial.statistician)
    text = client.get(reverse("dashboard:study", args=["alpha"])).content.decode()
    assert _url("manage") not in text


def test_the_manage_page_links_the_amendment_page_once_the_study_opened(client, trial):
    client.force_login(trial.coordinator)
    amend = reverse("admin:studies_study_amend_protocol", args=[trial.alpha.pk])
    assert amend not in client.get(_url("manage")).content.decode()
    randomize_study(study=trial.alpha)
    open_study(study=trial.alpha)
    assert amend in client.get(_url("manage")).content.decode()
    assert client.get(amend).status_code == 200


def _create(client, **overrides: str):
    data = {
        "username": "dr-new",
        "email": "new@example.org",
        "code": "alpha-R9",
        "specialty": "Thoracic radiology",
        "years_experience": "7",
        "role": "fellow",
        **overrides,
    }
    return client.post(_url("manage_reader_create"), data)


def test_a_created_reader_sets_a_password_once_logs_in_and_reads_after_randomization(client, trial):
    client.force_login(trial.coordinator)
    response = _create(client)
    assert response.status_code == 201
    link = response.context["link"]
    assert link in response.content.decode() and response["Cache-Control"].startswith("max-age=0")
    reader = Reader.objects.select_related("user").get(code="alpha-R9")
    assert (reader.role, reader.years_experience, reader.specialty) == (
        "fellow",
        7,
        "Thoracic radiology",
    )
    assert not reader.user.has_usable_password() and not reader.user.is_staff
    assert list(reader.user.groups.values_list("name", flat=True)) == ["reader"]
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert mail.outbox[0].to == ["new@example.org"]
    created = AuditEvent.objects.get(action=Action.READER_CREATE)
    assert created.study_id == trial.alpha.pk and created.actor_id == trial.coordinator.pk
    assert AuditEvent.objects.filter(action=Action.USER_CREATE, actor=trial.coordinator).exists()

    client.logout()
    path = re.sub(r"^https?://[^/]+", "", link)
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    new_password = "a long and new passphrase 42"
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
    )
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    again = client.get(path, follow=True)
    assert not again.context["validlink"] and 'id="invalid-link"' in again.content.decode()

    client.force_login(trial.coordinator)
    enrolled = client.post(_url("manage_enrol"), {"code": "alpha-R9"})
    assert enrolled.status_code == 302
    assert Enrolment.objects.filter(study=trial.alpha, reader=reader).exists()
    assert AuditEvent.objects.filter(action=Action.READER_ENROL, study_id=trial.alpha.pk).exists()
    randomize_study(study=trial.alpha)
    open_study(study=trial.alpha)
    client.logout()
    assert client.login(username="dr-new", password=new_password)
    home = client.get(reverse("home"))
    assert home.status_code == 200
    session = reader.sessions.get(study=trial.alpha, number=1)
    assert reverse("readers-continue", args=[session.pk]) in home.content.decode()
    first = client.get(reverse("readers-continue", args=[session.pk]), follow=True)
    assert first.status_code == 200 and first.redirect_chain


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"username": "alpha-reader1"}, 409, "user name 'alpha-reader1' is taken"),
        ({"code": "alpha-R1"}, 409, "reader code 'alpha-R1' is taken"),
        ({"email": "not an address"}, 400, "valid email"),
        ({"code": "has spaces"}, 400, "letters, numbers"),
    ],
)
def test_a_bad_reader_is_refused_with_a_message(client, trial, overrides, status, message):
    client.force_login(trial.coordinator)
    response = _create(client, **overrides)
    assert response.status_code == status
    assert message in html.unescape(response.content.decode())
    assert not Reader.objects.filter(code="alpha-R9").exists()


def test_an_existing_user_is_invited_enrolled_and_mailed(client, trial):
    user = cast(User, UserFactory(username="dr-old", email="old@example.org"))
    client.force_login(trial.coordinator)
    data = {"email": "OLD@example.org", "code": "alpha-R8", "years_experience": "3"}
    assert client.post(_url("manage_reader_invite"), data).status_code == 302
    assert Enrolment.objects.filter(study=trial.alpha, reader__user=user).exists()
    assert mail.outbox[0].to == ["old@example.org"] and "alpha-R8" in mail.outbox[0].body
    staff = {"email": "x@example.org", "code": "alpha-R7"}
    trial.statistician.email = "x@example.org"
    trial.statistician.save()
    refused = client.post(_url("manage_reader_invite"), staff)
    assert refused.status_code == 409 and "staff account" in refused.content.decode()


def test_unenrolment_is_audited_and_refused_once_the_study_opened(client, trial):
    client.force_login(trial.coordinator)
    enrolment = Enrolment.objects.get(study=trial.beta)
    assert client.post(_url("manage_unenrol", enrolment.pk)).status_code == 404
    assert Enrolment.objects.filter(pk=enrolment.pk).exists()
    mine = Enrolment.objects.get(study=trial.alpha)
    randomize_study(study=trial.alpha)
    open_study(study=trial.alpha)
    refused = client.post(_url("manage_unenrol", mine.pk))
    assert refused.status_code == 409 and "the allocation was frozen" in refused.content.decode()
    assert Enrolment.objects.filter(pk=mine.pk).exists()


def test_a_draft_study_unenrols_a_reader_who_read_nothing(client, trial):
    client.force_login(trial.coordinator)
    mine = Enrolment.objects.get(study=trial.alpha)
    randomize_study(study=trial.alpha)
    assert client.post(_url("manage_unenrol", mine.pk)).status_code == 302
    assert not Enrolment.objects.filter(pk=mine.pk).exists()
    assert not trial.alpha.sessions.exists()
    event = AuditEvent.objects.get(action=Action.READER_UNENROL)
    assert event.before is not None and event.before["reader_id"] == mine.reader_id


def test_groups_are_set_before_randomization_and_refused_after(client, trial):
    study = make_study(n_cases=4, n_readers=2, slug="gamma", design="split_plot")
    StudyMembership.objects.create(study=study, user=trial.coordinator, role="coordinator")
    client.force_login(trial.coordinator)
    first, second = Enrolment.objects.filter(study=study).order_by("pk")
    url = reverse("dashboard:manage_groups", args=["gamma"])
    response = client.post(url, {f"group-{first.pk}": "2", f"group-{second.pk}": "1"})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.group == 2
    event = AuditEvent.objects.get(action=Action.READER_GROUPS)
    assert event.after == {"gamma-R1": 2, "gamma-R2": 1}
    bad = client.post(url, {f"group-{first.pk}": "3"})
    assert bad.status_code == 409 and "between 1 and 2" in bad.content.decode()
    randomize_study(study=study)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.group, second.group) == (2, 1)  # the groups formed here, kept
    for enrolment in (first, second):
        others = Enrolment.objects.filter(study=study).exclude(pk=enrolment.pk).get()
        mine = set(enrolment.reader.assignments.values_list("case_id", flat=True))
        theirs = set(others.reader.assignments.values_list("case_id", flat=True))
        assert mine and not mine & theirs  # each group reads its own block
    refused = client.post(url, {f"group-{first.pk}": "1", f"group-{second.pk}": "2"})
    assert refused.status_code == 409
    assert "the allocation was randomized" in refused.content.decode()
    assert AuditEvent.objects.filter(action=Action.READER_GROUPS).count() == 1


def test_a_token_is_shown_once_and_only_its_hash_is_stored(client, trial):
    client.force_login(trial.coordinator)
    north = Site.objects.get(code="north")
    issued = client.post(_url("manage_tokens"), {"site": north.pk, "name": "PACS router"})
    assert issued.status_code == 201
    token = issued.context["issued"]
    assert len(token) >= 40 and token in issued.content.decode()
    stored = SiteToken.objects.get(study=trial.alpha, name="PACS router")
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    listing = client.get(_url("manage_tokens")).content.decode()
    assert token not in listing and "PACS router" in listing and "alpha-coordinator" in listing
    event = AuditEvent.objects.get(action=Action.SITE_TOKEN_ISSUE)
    assert token not in str(event.after) and event.object_id == str(stored.pk)
    assert client.post(_url("manage_token_revoke", stored.pk)).status_code == 302
    assert authenticate_site_token(token) is None
    assert AuditEvent.objects.filter(action=Action.SITE_TOKEN_REVOKE).count() == 1
    again = client.post(_url("manage_token_revoke", stored.pk))
    assert again.status_code == 409 and "already revoked" in again.content.decode()


def test_a_token_for_a_site_outside_the_study_is_refused(client, trial):
    lone = Site.objects.create(code="lone", name="Lone", study=trial.beta)
    client.force_login(trial.coordinator)
    response = client.post(_url("manage_tokens"), {"site": lone.pk, "name": "x"})
    assert response.status_code == 400 and not SiteToken.objects.filter(site=lone).exists()


def test_sites_are_created_renamed_and_a_shared_one_is_refused(client, trial):
    client.force_login(trial.coordinator)
    assert client.post(_url("manage_sites"), {"code": "west", "name": "West"}).status_code == 302
    west = Site.objects.get(code="west")
    assert west.study == trial.alpha
    renamed = client.post(_url("manage_site_rename", west.pk), {"name": "West General"})
    assert renamed.status_code == 302
    west.refresh_from_db()
    assert west.name == "West General"
    assert [e.action for e in AuditEvent.objects.filter(object_type="studies.site")] == [
        Action.SITE_CREATE,
        Action.SITE_RENAME,
    ]
    taken = client.post(_url("manage_sites"), {"code": "north", "name": "Other"})
    assert taken.status_code == 409 and "is taken" in taken.content.decode()
    # north has cases of alpha and of beta: beta's data too.
    north = Site.objects.get(code="north")
    shared = client.post(_url("manage_site_rename", north.pk), {"name": "Renamed"})
    assert shared.status_code == 409 and "beta" in shared.content.decode()
    north.refresh_from_db()
    assert north.name != "Renamed"
    # beta's own new site is not alpha's: not found on alpha's pages.
    east = Site.objects.create(code="east", name="East", study=trial.beta)
    assert client.post(_url("manage_site_rename", east.pk), {"name": "X"}).status_code == 404


def test_a_locked_study_refuses_changes_with_its_reason(client, trial):
    Study.objects.filter(pk=trial.alpha.pk).update(
        state="locked", opened_at="2026-01-01T00:00Z", locked_at="2026-02-01T00:00Z"
    )
    client.force_login(trial.coordinator)
    response = client.post(_url("manage_sites"), {"code": "west", "name": "West"})
    assert response.status_code == 409 and "locked" in response.content.decode()
    assert not Site.objects.filter(code="west").exists()


def test_every_manage_post_needs_the_csrf_token(trial):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(trial.coordinator)
    response = client.post(_url("manage_sites"), {"code": "west", "name": "West"})
    assert response.status_code == 403 and not Site.objects.filter(code="west").exists()
