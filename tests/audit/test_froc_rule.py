"""The FROC acceptance rule is protocol: set in a draft, frozen at open, changed by amendment."""

from __future__ import annotations

import pytest
from django.urls import reverse

from studyplatform.studies.models import Protocol, Study
from tests.admin_forms import study_form_fields
from tests.amendments import amend_url, amendment_form, coordinator_of, opened_study

pytestmark = pytest.mark.django_db


def _change_form(study: Study, **changes):
    types = list(study.finding_types.order_by("order", "code"))
    data = study_form_fields(study) | {
        "arms-TOTAL_FORMS": 0,
        "arms-INITIAL_FORMS": 0,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
        "finding_types-TOTAL_FORMS": len(types),
        "finding_types-INITIAL_FORMS": len(types),
    }
    return data | changes


def test_the_frozen_protocol_holds_the_froc_rule(roles):
    study = opened_study(n_cases=4, n_readers=1)

    content = Protocol.objects.get(study=study, version=1).content

    assert (content["froc_rule"], content["froc_distance_px"]) == ("inside", None)


def test_the_study_admin_cannot_change_the_froc_rule_of_an_open_study(client, roles):
    study = opened_study(n_cases=4, n_readers=1)
    client.force_login(coordinator_of(study))
    url = reverse("admin:studies_study_change", args=[study.pk])

    page = client.get(url).content.decode()
    client.post(url, _change_form(study, froc_rule="distance", froc_distance_px="25"))

    assert 'name="froc_rule"' not in page and 'name="froc_distance_px"' not in page
    study.refresh_from_db()
    assert (study.froc_rule, study.froc_distance_px) == ("inside", None)


def test_an_amendment_changes_the_froc_rule_in_a_new_signed_version(client, roles):
    study = opened_study(n_cases=4, n_readers=1)
    client.force_login(coordinator_of(study))
    data = amendment_form(
        study, froc_rule="distance", froc_distance_px="30", reason="Marks near the lesion count."
    )

    response = client.post(amend_url(study), data)

    assert response.status_code == 302, response.content.decode()[-2000:]
    study.refresh_from_db()
    assert (study.froc_rule, study.froc_distance_px, study.protocol_version) == (
        "distance",
        30.0,
        2,
    )
    content = Protocol.objects.get(study=study, version=2).content
    assert (content["froc_rule"], content["froc_distance_px"]) == ("distance", 30.0)


def test_an_amendment_to_the_distance_rule_without_a_distance_is_refused(client, roles):
    study = opened_study(n_cases=4, n_readers=1)
    client.force_login(coordinator_of(study))

    response = client.post(
        amend_url(study), amendment_form(study, froc_rule="distance", reason="distance")
    )

    assert response.status_code == 400
    assert "needs an acceptance distance" in response.content.decode()
    study.refresh_from_db()
    assert (study.froc_rule, study.protocol_version) == ("inside", 1)


def test_a_draft_study_takes_the_distance_rule_only_with_a_distance(client, roles):
    from tests.reading.helpers import make_study

    study = make_study(n_cases=2, n_readers=1)
    client.force_login(coordinator_of(study))
    url = reverse("admin:studies_study_change", args=[study.pk])
    types = list(study.finding_types.order_by("order", "code"))
    inlines = {
        f"finding_types-{i}-{k}": v
        for i, ft in enumerate(types)
        for k, v in (("id", ft.pk), ("study", study.pk), ("code", ft.code), ("name", ft.name),
                     ("order", ft.order), ("ai_threshold", ""))
    }  # fmt: skip
    arms = list(study.arms.order_by("order"))
    inlines |= {
        f"arms-{i}-{k}": v
        for i, arm in enumerate(arms)
        for k, v in (("id", arm.pk), ("study", study.pk), ("name", arm.name),
                     ("label", arm.label), ("order", arm.order))
    }  # fmt: skip
    form = _change_form(study, **inlines) | {"arms-TOTAL_FORMS": len(arms),
                                             "arms-INITIAL_FORMS": len(arms)}  # fmt: skip

    refused = client.post(url, form | {"froc_rule": "distance"})
    client.post(url, form | {"froc_rule": "distance", "froc_distance_px": "12"})

    assert "needs an acceptance distance" in refused.content.decode()
    study.refresh_from_db()
    assert (study.froc_rule, study.froc_distance_px) == ("distance", 12.0)
