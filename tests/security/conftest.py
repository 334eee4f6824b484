"""A world of two studies and one user per role, shared by the permission and blinding tests.

Study ``alpha`` is the one every URL is filled from: its reader has submitted a read and has an
AI-assisted case open (so every reading URL has something to show its owner). Study ``beta``
has its own reader and coordinator: people who work on the platform, but not on alpha.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN, ensure_roles
from studyplatform.audit.signatures import FINALIZE_TRUTH_MEANING, finalize_truth
from studyplatform.reading.models import Assignment, Reader
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import MemberRole, Site, Study, StudyMembership
from studyplatform.studies.services import issue_site_token
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

ROLES = (
    "anonymous",
    "reader",
    "other_reader",
    "coordinator",
    "statistician",
    "other_coordinator",
    "superuser",
)


@dataclass
class World:
    alpha: Study
    beta: Study
    users: dict[str, User | None]
    submitted: Assignment  # alpha's reader: read and submitted
    assisted: Assignment  # alpha's reader: opened, AI-assisted, not submitted (session 1)


def _staff(username: str, role: str, study: Study, member_role: str) -> User:
    user = cast(User, UserFactory(username=username, is_staff=True))
    user.groups.set([Group.objects.get(name=role)])
    StudyMembership.objects.create(study=study, user=user, role=member_role)
    return user


def _answers() -> dict:
    return {
        "nodule": {"present": True, "confidence": 80, "marks": []},
        "effusion": {"present": False, "confidence": 10, "marks": []},
    }


def read_until(client, user: User, study: Study, *, number: int, arm: str, submitted: int):
    """Open and submit the reader's session cases in order until ``arm`` comes with at least
    ``submitted`` reads done; return that assignment, opened."""
    client.force_login(user)
    ordered = Assignment.objects.filter(
        session__study=study, session__number=number, reader__user=user
    ).order_by("position", "step")
    for done, assignment in enumerate(ordered):
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        if assignment.arm.name == arm and done >= submitted:
            return assignment
        body = {"idempotency_key": f"key-{assignment.pk:012d}", "findings": _answers()}
        response = client.post(
            reverse("readers-submit", args=[assignment.pk]),
            json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
    raise AssertionError(f"no {arm} case after {submitted} reads in session {number}")


@pytest.fixture
def world(db, client) -> World:
    ensure_roles()
    alpha = make_study(n_cases=6, n_readers=1, with_images=True, with_prereads=True, slug="alpha")
    beta = make_study(n_cases=2, n_readers=1, with_images=True, with_prereads=True, slug="beta")
    for study in (alpha, beta):
        study.washout_days = 0
        study.save(update_fields=["washout_days"])
        randomize_study(study=study)
        open_study(study=study)
    reader = Reader.objects.get(code="alpha-R1").user
    assisted = read_until(client, reader, alpha, number=1, arm="assisted", submitted=1)
    submitted = (
        Assignment.objects.filter(reader__user=reader, reads__isnull=False).order_by("pk").first()
    )
    client.logout()
    superuser = cast(User, UserFactory(username="root", is_staff=True, is_superuser=True))
    users: dict[str, User | None] = {
        "anonymous": None,
        "reader": reader,
        "other_reader": Reader.objects.get(code="beta-R1").user,
        "coordinator": _staff("alpha-coordinator", COORDINATOR, alpha, MemberRole.COORDINATOR),
        "statistician": _staff("alpha-statistician", STATISTICIAN, alpha, MemberRole.STATISTICIAN),
        "other_coordinator": _staff("beta-coordinator", COORDINATOR, beta, MemberRole.COORDINATOR),
        "superuser": superuser,
    }
    issue_site_token(study=alpha, site=Site.objects.get(code="north"), name="north PACS")
    finalize_truth(
        study=alpha, user=users["coordinator"], password=PASSWORD, meaning=FINALIZE_TRUTH_MEANING
    )
    return World(alpha, beta, users, submitted, assisted)


def open_unassisted(client, world: World) -> Assignment:
    """Go on reading after the assisted case until an unassisted one is open; return it.

    A reader has one case open at a time (cases in order, sessions one after the other), so the
    assisted case is submitted first; session 2 follows session 1 (the washout is 0 days here).
    """
    reader = world.users["reader"]
    assert reader is not None
    client.force_login(reader)
    pending = Assignment.objects.filter(
        session__study=world.alpha, reader__user=reader, reads__isnull=True
    ).order_by("session__number", "position", "step")
    for assignment in pending:
        assert client.get(reverse("readers-assignment", args=[assignment.pk])).status_code == 200
        if assignment.arm.name == "unassisted":
            return assignment
        body = {"idempotency_key": f"key-{assignment.pk:012d}", "findings": _answers()}
        response = client.post(
            reverse("readers-submit", args=[assignment.pk]),
            json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
    raise AssertionError("the reader has no unassisted case left")
