"""An open study with a coordinator, and amendments through the amendment page (shared helpers)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Study, StudyMembership
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study


def coordinator_of(study: Study, username: str = "coord") -> Any:
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR))
    StudyMembership.objects.create(study=study, user=user, role="coordinator")
    return user


def opened_study(**kwargs: Any) -> Study:
    """make_study's draft, randomized and opened: protocol version 1 is frozen."""
    study = make_study(**kwargs)
    randomize_study(study=study)
    return open_study(study=study)


def amend_url(study: Study) -> str:
    return reverse("admin:studies_study_amend_protocol", args=[study.pk])


def amendment_form(study: Study, **changes: Any) -> dict[str, Any]:
    """The amendment page's POST as the page prefills it, with ``changes`` applied (None: a
    field left out, as an unchecked box is)."""
    data: dict[str, Any] = {
        "washout_days": study.washout_days,
        "primary_endpoint": study.primary_endpoint,
        "ni_margin": "" if study.ni_margin is None else study.ni_margin,
        "froc_rule": study.froc_rule,
        "froc_distance_px": "" if study.froc_distance_px is None else study.froc_distance_px,
        "contradiction_rule": study.contradiction_rule,
        "training_shows_ai": "on" if study.training_shows_ai else None,
        "new_code": "",
        "new_name": "",
        "new_significant": "on",
        "new_threshold": "",
        "reason": "",
        "password": PASSWORD,
    }
    for ft in study.finding_types.all():
        if ft.clinically_significant:
            data[f"significant_{ft.code}"] = "on"
        data[f"threshold_{ft.code}"] = "" if ft.ai_threshold is None else ft.ai_threshold
    data |= changes
    return {k: v for k, v in data.items() if v is not None}
