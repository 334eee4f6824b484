"""The study admin freezes the protocol once the study has opened, whatever is posted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.studies.admin import StudyAdmin
from studyplatform.studies.models import FindingType, Study
from tests.admin_forms import study_form_fields
from tests.amendments import coordinator_of, opened_study
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


def _change_url(study: Study) -> str:
    return reverse("admin:studies_study_change", args=[study.pk])


def _form(study: Study, *, editable_inlines: bool = False, **changes):
    """The change form as the admin renders it: inlines read-only once the protocol froze."""
    data = study_form_fields(study) | {
        "arms-TOTAL_FORMS": 0,
        "arms-INITIAL_FORMS": 0,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    types = list(study.finding_types.order_by("order", "code"))
    data |= {
        "finding_types-TOTAL_FORMS": len(types),
        "finding_types-INITIAL_FORMS": len(types),
    }
    for i, ft in enumerate(types):
        data |= {
            f"finding_types-{i}-id": ft.pk,
            f"finding_types-{i}-study": study.pk,
            f"finding_types-{i}-code": ft.code,
            f"finding_types-{i}-name": ft.name,
            f"finding_types-{i}-order": ft.order,
            f"finding_types-{i}-ai_threshold": "",
        }
        if ft.clinically_significant:
            data[f"finding_types-{i}-clinically_significant"] = "on"
    return data | changes


def _tick_and_add(study: Study, data: dict) -> dict:
    """Reproduction: tick 'clinically significant' on effusion and add pneumothorax."""
    effusion = next(
        i for i in range(data["finding_types-TOTAL_FORMS"])
        if data[f"finding_types-{i}-code"] == "effusion"
    )  # fmt: skip
    n = data["finding_types-TOTAL_FORMS"]
    return data | {
        f"finding_types-{effusion}-clinically_significant": "on",
        "finding_types-TOTAL_FORMS": n + 1,
        f"finding_types-{n}-study": study.pk,
        f"finding_types-{n}-code": "pneumothorax",
        f"finding_types-{n}-name": "Pneumothorax",
        f"finding_types-{n}-order": 9,
        f"finding_types-{n}-clinically_significant": "on",
        f"finding_types-{n}-ai_threshold": "",
    }


def _snapshot(study: Study):
    return sorted(
        FindingType.objects.filter(study=study).values_list(
            "code", "clinically_significant", "ai_threshold", "introduced_in"
        )
    )


@pytest.fixture
def study(roles) -> Study:
    study = opened_study(n_cases=4, n_readers=1)
    FindingType.objects.filter(study=study, code="effusion").update(clinically_significant=False)
    return study


def test_open_study_shows_every_protocol_field_read_only_with_the_amend_link(client, study):
    client.force_login(coordinator_of(study))
    page = client.get(_change_url(study)).content.decode()
    for field in ("design", "washout_days", "primary_endpoint", "ni_margin", "rating_scale",
                  "contradiction_rule", "ai_model_name", "readers_per_case"):  # fmt: skip
        assert f'name="{field}"' not in page, field
    assert 'name="title"' in page and 'name="description"' in page  # still editable
    assert 'name="finding_types-0-clinically_significant"' not in page
    assert 'name="finding_types-0-ai_threshold"' not in page
    assert "Version 1 in force" in page
    assert reverse("admin:studies_study_amend_protocol", args=[study.pk]) in page


def test_ticking_significance_and_adding_a_finding_type_on_an_open_study_change_nothing(
    client, study
):
    client.force_login(coordinator_of(study))
    before = _snapshot(study)
    data = _tick_and_add(study, _form(study, title="Renamed", washout_days=3, design="sequential"))
    response = client.post(_change_url(study), data)
    assert response.status_code in (302, 403)
    assert _snapshot(study) == before
    study.refresh_from_db()
    assert (study.washout_days, study.design) == (28, "crossover")
    assert not AuditEvent.objects.filter(action__startswith="findingtype.").exists()


def test_a_study_that_opened_while_the_form_was_posted_refuses_the_protocol_change(
    client, study, monkeypatch
):
    """The save path refuses, not only the read-only widgets: the admin saw a draft."""
    client.force_login(coordinator_of(study))
    before = _snapshot(study)
    stale = Study.objects.get(pk=study.pk)
    stale.protocol_version, stale.state = 0, "draft"  # as loaded before the study opened
    monkeypatch.setattr(StudyAdmin, "get_object", lambda *args, **kwargs: stale)
    response = client.post(_change_url(study), _tick_and_add(study, _form(study)))
    assert response.status_code == 403
    assert _snapshot(study) == before
    assert not AuditEvent.objects.filter(action__startswith="findingtype.").exists()


def test_title_and_description_stay_editable_while_open(client, study):
    client.force_login(coordinator_of(study))
    response = client.post(_change_url(study), _form(study, title="New title", description="d"))
    assert response.status_code == 302, response.content.decode()[:3000]
    study.refresh_from_db()
    assert (study.title, study.description) == ("New title", "d")


def test_a_draft_study_protocol_is_edited_directly(client, roles):
    draft = make_study(n_cases=2, n_readers=1)
    client.force_login(coordinator_of(draft))
    page = client.get(_change_url(draft)).content.decode()
    assert 'name="washout_days"' in page and "Draft: not frozen yet" in page
    response = client.post(_change_url(draft), _tick_and_add(draft, _form(draft, washout_days=3)))
    assert response.status_code == 302, response.content.decode()[:3000]
    draft.refresh_from_db()
    assert draft.washout_days == 3
    assert draft.finding_types.get(code="pneumothorax").introduced_in == 1


def test_the_study_admin_is_forbidden_to_another_studys_coordinator(client, study):
    other = make_study(n_cases=1, n_readers=1, slug="other")
    client.force_login(coordinator_of(other, username="other-coord"))
    before = _snapshot(study)
    response = client.post(_change_url(study), _tick_and_add(study, _form(study)))
    assert response.status_code in (302, 404)
    assert _snapshot(study) == before
