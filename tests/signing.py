"""Signing a study's lock or final truth as its coordinator, for tests of what they freeze.

The signatures themselves are tested in tests/audit/test_signatures.py (through the admin's
signature page); these helpers only bring a study into the signed state. Needs the ``roles``
fixture (the coordinator group).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from studyplatform.accounts.roles import COORDINATOR
from studyplatform.audit.models import Signature
from studyplatform.audit.signatures import finalize_truth, lock_study
from studyplatform.studies.models import MemberRole, Study, StudyMembership
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"  # the factories' password


def coordinator(study: Study, username: str = "coord") -> Any:
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR))
    StudyMembership.objects.get_or_create(
        study=study, user=user, defaults={"role": MemberRole.COORDINATOR}
    )
    return user


def sign_final_truth(study: Study, username: str = "coord") -> Signature:
    return finalize_truth(study=study, user=coordinator(study, username), password=PASSWORD)


def sign_lock(study: Study, username: str = "coord") -> Signature:
    return lock_study(study=study, user=coordinator(study, username), password=PASSWORD)
