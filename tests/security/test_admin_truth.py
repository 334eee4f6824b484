"""The truth forms offer, and accept, only finding types of the case's own study."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from studyplatform.studies.models import Case, FindingType, Truth

pytestmark = pytest.mark.django_db


def _values(html: str, name: str) -> set[int]:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no {name} select"
    return {int(v) for v in re.findall(r'<option value="(\d+)"', select.group(1))}


def _types(study) -> set[int]:
    return set(FindingType.objects.filter(study=study).values_list("pk", flat=True))


def _truth_data(truth: Truth, finding_type: FindingType) -> dict[str, str]:
    return {
        "case": str(truth.case_id),
        "finding_type": str(finding_type.pk),
        "present": "on",
        "source": truth.source,
        "location": "null",
    }


def test_truth_pages_offer_only_the_cases_studys_finding_types(client, world):
    truth = Truth.objects.filter(case__study=world.beta).first()
    client.force_login(world.users["other_coordinator"])
    change = client.get(reverse("admin:studies_truth_change", args=[truth.pk]))
    assert _values(change.content.decode(), "finding_type") == _types(world.beta)
    add = client.get(reverse("admin:studies_truth_add"))
    assert _values(add.content.decode(), "finding_type") == _types(world.beta)
    case = client.get(reverse("admin:studies_case_change", args=[truth.case_id]))
    assert _values(case.content.decode(), "truths-0-finding_type") == _types(world.beta)
    client.force_login(world.users["superuser"])  # superusers: still the case's own study
    change = client.get(reverse("admin:studies_truth_change", args=[truth.pk]))
    assert _values(change.content.decode(), "finding_type") == _types(world.beta)


def test_a_crafted_post_cannot_attach_another_studys_finding_type(client, world):
    truth = Truth.objects.filter(case__study=world.beta).first()
    foreign = FindingType.objects.filter(study=world.alpha).first()
    client.force_login(world.users["other_coordinator"])
    url = reverse("admin:studies_truth_change", args=[truth.pk])
    response = client.post(url, _truth_data(truth, foreign))
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert Truth.objects.get(pk=truth.pk).finding_type_id == truth.finding_type_id


def test_the_add_form_checks_the_finding_types_study_against_the_cases(client, world):
    case = Case.objects.filter(study=world.beta).exclude(truths__isnull=True).first()
    foreign = (
        FindingType.objects.filter(study=world.alpha)
        .exclude(code__in=case.truths.values("finding_type__code"))
        .first()
        or FindingType.objects.filter(study=world.alpha).first()
    )
    client.force_login(world.users["superuser"])  # offered every study's types on the add form
    before = Truth.objects.count()
    response = client.post(
        reverse("admin:studies_truth_add"),
        {"case": str(case.pk), "finding_type": str(foreign.pk), "present": "on",
         "source": "consensus", "location": "null"},
    )  # fmt: skip
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "belongs to another study" in str(errors["finding_type"])
    assert Truth.objects.count() == before


def test_the_case_pages_truth_inline_refuses_another_studys_finding_type(client, world):
    truth = Truth.objects.filter(case__study=world.beta).first()
    case = truth.case
    foreign = FindingType.objects.filter(study=world.alpha).first()
    client.force_login(world.users["other_coordinator"])
    url = reverse("admin:studies_case_change", args=[case.pk])
    page = client.get(url)
    data = {}
    for form in page.context["inline_admin_formsets"]:
        formset = form.formset
        management = formset.management_form.initial.items()
        data.update({f"{formset.prefix}-{k}": v for k, v in management})
        for i, row in enumerate(formset.forms):
            for name, field in row.fields.items():
                value = row.initial.get(name, field.initial)
                if value is not None and not isinstance(value, bool | dict | list):
                    data[f"{formset.prefix}-{i}-{name}"] = getattr(value, "pk", value)
                elif value is True:
                    data[f"{formset.prefix}-{i}-{name}"] = "on"
    for name in page.context["adminform"].form.fields:
        value = page.context["adminform"].form.initial.get(name)
        if value is not None:
            data[name] = getattr(value, "pk", value)
    index = next(
        i for i, row in enumerate(next(f.formset for f in page.context["inline_admin_formsets"]
                                       if f.formset.prefix == "truths").forms)
        if row.instance.pk == truth.pk
    )  # fmt: skip
    data[f"truths-{index}-finding_type"] = foreign.pk
    response = client.post(url, data)
    assert response.status_code == 200
    truths = next(
        f.formset for f in response.context["inline_admin_formsets"] if f.formset.prefix == "truths"
    )
    assert set(truths.errors[index]) == {"finding_type"}  # that row's choice, nothing else
    assert Truth.objects.get(pk=truth.pk).finding_type_id == truth.finding_type_id
