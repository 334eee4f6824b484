"""Hanging protocols in the admin: a coordinator writes them as data (rules inline) for their own
study only, bad rules are refused naming the problem, and a locked study's protocols are frozen."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.studies.models import HangingProtocol, HangingRule, Study
from tests.signing import sign_lock

pytestmark = pytest.mark.django_db


def _rule(index: int, **values: Any) -> dict[str, Any]:
    fields = {
        "viewport": "", "modality": "", "description": "", "description_match": "contains",
        "view_position": "", "body_part": "", "nth": "1", "required": "on",
    }  # fmt: skip
    fields.update({k: str(v) for k, v in values.items()})
    if values.get("required") is False:
        del fields["required"]
    return {f"rules-{index}-{k}": v for k, v in fields.items()}


def _form(study: Study, *rules: dict[str, Any], name: str = "CT axial + prior") -> dict[str, Any]:
    data: dict[str, Any] = {
        "study": study.pk, "name": name, "priority": "1", "case_modality": "CT",
        "rows": "1", "columns": "2",
        "rules-TOTAL_FORMS": str(len(rules)), "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for index, rule in enumerate(rules):
        data.update(_rule(index, **rule))
    return data


CT_AND_PRIOR = (
    {"viewport": 1, "modality": "CT", "description": "axial", "nth": 1},
    {"viewport": 2, "modality": "CT", "nth": 2},
)


def test_coordinator_creates_a_protocol_with_its_rules_inline(client, world):
    client.force_login(world.users["coordinator"])
    response = client.post(
        reverse("admin:studies_hangingprotocol_add"), _form(world.alpha, *CT_AND_PRIOR)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    protocol = HangingProtocol.objects.get(study=world.alpha)
    rules = list(
        protocol.rules.order_by("viewport").values_list(
            "viewport", "modality", "description", "nth"
        )
    )
    assert rules == [(1, "CT", "axial", 1), (2, "CT", "", 2)]
    # Audited, the rules with the protocol's study.
    events = AuditEvent.objects.filter(action__in=["hangingprotocol.create", "hangingrule.create"])
    assert events.count() == 3 and set(events.values_list("study_id", flat=True)) == {
        world.alpha.pk
    }
    page = client.get(reverse("admin:studies_hangingprotocol_change", args=[protocol.pk]))
    assert page.status_code == 200 and "CT axial + prior" in page.content.decode()


def test_a_bad_rule_is_refused_naming_the_problem(client, world):
    client.force_login(world.users["coordinator"])
    bad = (
        {"viewport": 1, "description": "T1(", "description_match": "regex"},
        {"viewport": 3, "modality": "CT"},
    )
    response = client.post(reverse("admin:studies_hangingprotocol_add"), _form(world.alpha, *bad))
    html = response.content.decode()
    assert response.status_code == 200
    assert "not a regular expression" in html
    assert "viewport 3 is outside the 1x2 grid (1-2)" in html
    assert not HangingProtocol.objects.exists()


def test_other_studies_coordinators_cannot_see_or_change_a_protocol(client, world):
    protocol = HangingProtocol.objects.create(study=world.alpha, name="CXR PA + lateral")
    HangingRule.objects.create(protocol=protocol, viewport=1, view_position="PA")
    client.force_login(world.users["other_coordinator"])
    listing = client.get(reverse("admin:studies_hangingprotocol_changelist")).content.decode()
    assert "CXR PA + lateral" not in listing
    change = client.get(reverse("admin:studies_hangingprotocol_change", args=[protocol.pk]))
    assert change.status_code == 302  # "not found": back to the admin index with a message
    posted = client.post(
        reverse("admin:studies_hangingprotocol_change", args=[protocol.pk]),
        _form(world.beta, name="taken over"),
    )
    assert posted.status_code == 302
    protocol.refresh_from_db()
    assert protocol.name == "CXR PA + lateral" and protocol.study == world.alpha
    # Their add form offers only their own study; a post naming another is refused.
    add = client.get(reverse("admin:studies_hangingprotocol_add")).content.decode()
    assert f'value="{world.beta.pk}"' in add and f'value="{world.alpha.pk}"' not in add
    refused = client.post(
        reverse("admin:studies_hangingprotocol_add"), _form(world.alpha, *CT_AND_PRIOR)
    )
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert HangingProtocol.objects.count() == 1
    # Readers have no admin at all.
    client.force_login(world.users["reader"])
    assert client.get(reverse("admin:studies_hangingprotocol_changelist")).status_code == 302


def test_a_locked_studys_protocols_are_frozen(client, world):
    protocol = HangingProtocol.objects.create(study=world.beta, name="MR T1 + T2")
    HangingRule.objects.create(protocol=protocol, viewport=1, description="T1")
    sign_lock(world.beta, username="beta-signer")
    client.force_login(world.users["other_coordinator"])
    page = client.get(reverse("admin:studies_hangingprotocol_change", args=[protocol.pk]))
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()  # read-only
    events = AuditEvent.objects.count()
    changed = client.post(
        reverse("admin:studies_hangingprotocol_change", args=[protocol.pk]),
        _form(world.beta, name="renamed"),
    )
    added = client.post(
        reverse("admin:studies_hangingprotocol_add"), _form(world.beta, *CT_AND_PRIOR, name="new")
    )
    assert changed.status_code == 403 and added.status_code == 403
    protocol.refresh_from_db()
    assert protocol.name == "MR T1 + T2" and HangingProtocol.objects.count() == 1
    assert AuditEvent.objects.count() == events
