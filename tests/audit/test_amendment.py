"""Protocol amendments: a signed new version with a reason, through the amendment page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from studyplatform.accounts.roles import READER
from studyplatform.audit.models import Action, AuditEvent, Signature
from studyplatform.audit.selectors import signature_problems, verify_chain
from studyplatform.audit.signatures import SignatureStateError, amend_protocol
from studyplatform.studies.models import FindingType, Protocol, Study
from studyplatform.studies.services.amendment import InvalidAmendmentError
from tests.amendments import amend_url, amendment_form, coordinator_of, opened_study
from tests.factories import UserFactory
from tests.reading.helpers import PASSWORD, make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(roles) -> Study:
    study = opened_study(n_cases=4, n_readers=1)
    FindingType.objects.filter(study=study, code="effusion").update(clinically_significant=False)
    return study


def test_amendment_page_signs_a_new_version_with_the_changes(client, study):
    client.force_login(coordinator_of(study))
    page = client.get(amend_url(study))
    assert page.status_code == 200
    assert "Protocol version <strong>1</strong>" in page.content.decode()
    data = amendment_form(
        study,
        significant_effusion="on",
        threshold_nodule="0.35",
        new_code="pneumothorax",
        new_name="Pneumothorax",
        washout_days="21",
        reason="Effusion is a safety finding; pneumothorax added at the DSMB's request.",
    )
    response = client.post(amend_url(study), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    study.refresh_from_db()
    assert study.protocol_version == 2 and study.washout_days == 21
    added = FindingType.objects.get(study=study, code="pneumothorax")
    assert added.introduced_in == 2 and added.clinically_significant
    assert FindingType.objects.get(study=study, code="effusion").clinically_significant
    assert FindingType.objects.get(study=study, code="nodule").ai_threshold == 0.35
    protocol = Protocol.objects.get(study=study, version=2)
    assert protocol.reason.startswith("Effusion is a safety finding")
    signature = Signature.objects.get(study=study, kind=Signature.Kind.PROTOCOL_AMEND)
    assert signature.data_sha256 == protocol.sha256
    assert AuditEvent.objects.filter(action=Action.PROTOCOL_AMEND, study=study).count() == 2
    assert verify_chain().ok and signature_problems() == []


def test_amendment_page_offers_whether_training_feedback_shows_the_ai(client, study):
    coordinator = coordinator_of(study)
    client.force_login(coordinator)
    page = client.get(amend_url(study)).content.decode()
    assert 'name="training_shows_ai"' in page and "Training: show the AI" in page
    assert re.search(r'<input[^>]*name="training_shows_ai"[^>]*checked', page)
    data = amendment_form(study, training_shows_ai=None, reason="Readers train without the AI.")
    response = client.post(amend_url(study), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    study.refresh_from_db()
    assert study.protocol_version == 2 and study.training_shows_ai is False
    before, after = (Protocol.objects.get(study=study, version=v) for v in (1, 2))
    assert before.content["training_shows_ai"] is True
    assert after.content["training_shows_ai"] is False
    assert after.reason == "Readers train without the AI."
    signature = Signature.objects.get(study=study, kind=Signature.Kind.PROTOCOL_AMEND)
    assert (signature.signer, signature.data_sha256) == (coordinator, after.sha256)
    events = AuditEvent.objects.filter(action=Action.PROTOCOL_AMEND, study=study)
    stored = [(e.after or {})["content"] for e in events if "content" in (e.after or {})]
    assert [c["training_shows_ai"] for c in stored] == [False]
    assert verify_chain().ok and signature_problems() == []
    # The dashboard lists the amendment with what changed; the page now shows it unchecked.
    dashboard = client.get(reverse("dashboard:study", args=[study.slug])).content.decode()
    assert "training shows the AI: yes \u2192 no" in dashboard
    page = client.get(amend_url(study)).content.decode()
    assert not re.search(r'<input[^>]*name="training_shows_ai"[^>]*checked', page)


def test_a_second_amendment_is_a_third_version(study):
    user = coordinator_of(study)
    for version, days in ((2, 21), (3, 14)):
        amend_protocol(
            study=study,
            user=user,
            password=PASSWORD,
            reason="washout",
            changes={"washout_days": days},
        )
        assert study.protocol_version == version
    assert Signature.objects.filter(kind=Signature.Kind.PROTOCOL_AMEND).count() == 2


def test_a_wrong_password_is_refused_audited_and_changes_nothing(client, study):
    client.force_login(coordinator_of(study))
    data = amendment_form(study, significant_effusion="on", reason="r", password="guess")
    response = client.post(amend_url(study), data)
    assert response.status_code == 403
    assert "The password is not correct" in response.content.decode()
    study.refresh_from_db()
    assert study.protocol_version == 1
    assert not FindingType.objects.get(study=study, code="effusion").clinically_significant
    refused = AuditEvent.objects.get(action=Action.PROTOCOL_AMEND_REFUSED)
    assert refused.actor_username == "coord" and refused.after == {"refused": "wrong password"}


def test_an_amendment_needs_a_reason(client, study):
    client.force_login(coordinator_of(study))
    response = client.post(amend_url(study), amendment_form(study, significant_effusion="on"))
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    with pytest.raises(InvalidAmendmentError, match="needs a reason"):
        amend_protocol(
            study=study,
            user=coordinator_of(study, "coord2"),
            password=PASSWORD,
            reason="  ",
            changes={"washout_days": 3},
        )
    study.refresh_from_db()
    assert study.protocol_version == 1 and study.washout_days == 28


def test_an_amendment_that_changes_nothing_is_refused(client, study):
    client.force_login(coordinator_of(study))
    response = client.post(amend_url(study), amendment_form(study, reason="nothing"))
    assert response.status_code == 400 and "changes nothing" in response.content.decode()
    assert not Protocol.objects.filter(study=study, version=2).exists()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"design": "sequential"}, "design cannot be amended: the stored allocation"),
        ({"arms": []}, "arms cannot be amended: the stored allocation"),
        ({"remove_finding_types": ["effusion"]}, "submitted reads answered it"),
        ({"split_plot_groups": 3}, "split plot groups cannot be amended"),
        ({"readers_per_case": 2}, "readers per case cannot be amended"),
        ({"ai_model_name": "other"}, "readers have seen the pinned model's output"),
        ({"finding_types": {"nodule": {"name": "Mass"}}}, "only clinically_significant and"),
        ({"finding_types": {"nodule": {"ai_threshold": 1.5}}}, "outside 0-1"),
        ({"add_finding_types": [{"code": "nodule", "name": "Again"}]}, "already has"),
        ({"add_finding_types": [{"code": "Bad Code", "name": "x"}]}, "short slug"),
        ({"training_shows_ai": "no"}, "training shows the AI must be true or false"),
    ],
)
def test_changes_that_would_invalidate_the_allocation_or_reads_are_refused(study, changes, why):
    with pytest.raises(InvalidAmendmentError, match=why):
        amend_protocol(
            study=study, user=coordinator_of(study), password=PASSWORD, reason="r", changes=changes
        )
    study.refresh_from_db()
    assert study.protocol_version == 1 and study.design == "crossover"
    assert not Signature.objects.exists()


def test_a_draft_or_locked_study_is_not_amended(client, roles):
    draft = make_study(n_cases=2, n_readers=1)
    with pytest.raises(SignatureStateError, match="is a draft: edit its protocol directly"):
        amend_protocol(
            study=draft, user=coordinator_of(draft), password=PASSWORD, reason="r",
            changes={"washout_days": 3},
        )  # fmt: skip
    locked = opened_study(n_cases=2, n_readers=1, slug="locked")
    Study.objects.filter(pk=locked.pk).update(state="locked", locked_at=timezone.now())
    client.force_login(coordinator_of(locked, "locked-coord"))
    response = client.post(amend_url(locked), amendment_form(locked, washout_days=3, reason="r"))
    assert response.status_code == 409 and "locked" in response.content.decode()
    assert Study.objects.get(pk=locked.pk).washout_days == 28


def test_amendment_page_is_forbidden_to_readers_and_other_studies_coordinators(client, study):
    reader = UserFactory(username="reader", is_staff=True)
    reader.groups.add(Group.objects.get(name=READER))
    client.force_login(reader)
    assert client.get(amend_url(study)).status_code == 403
    other = make_study(n_cases=1, n_readers=1, slug="elsewhere")
    client.force_login(coordinator_of(other, "elsewhere-coord"))
    data = amendment_form(study, significant_effusion="on", reason="r")
    assert client.post(amend_url(study), data).status_code == 403
    study.refresh_from_db()
    assert study.protocol_version == 1
    client.logout()
    assert client.get(amend_url(study)).status_code == 302


def test_study_change_page_links_to_the_amendment_page(client, study):
    client.force_login(coordinator_of(study))
    page = client.get(reverse("admin:studies_study_change", args=[study.pk])).content.decode()
    assert amend_url(study) in page
