"""Locking a study and finalizing truth: password re-entry, recorded meaning, nothing after."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from studyplatform.accounts.roles import COORDINATOR, READER
from studyplatform.audit.models import Action, AuditEvent, Signature
from studyplatform.audit.selectors import study_data_digest, verify_chain
from studyplatform.audit.signatures import (
    LOCK_MEANING,
    SignatureRefusedError,
    SignatureStateError,
    finalize_truth,
    lock_study,
)
from studyplatform.studies.models import StudyMembership
from tests.factories import (
    CaseFactory,
    FindingTypeFactory,
    StudyFactory,
    TruthFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def _coordinator(study, username="coord"):
    from django.contrib.auth.models import Group

    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=COORDINATOR))
    StudyMembership.objects.create(study=study, user=user, role="coordinator")
    return user


def _open_study():
    return StudyFactory(state="open", opened_at=timezone.now())


def _study_with_truth():
    study = _open_study()
    finding = FindingTypeFactory(study=study)
    for _ in range(2):
        TruthFactory(case=CaseFactory(study=study), finding_type=finding)
    return study


def test_lock_with_the_right_password_locks_and_records_the_signature(roles):
    study = _open_study()
    user = _coordinator(study)
    digest = study_data_digest(study)
    signature = lock_study(study=study, user=user, password=PASSWORD)
    study.refresh_from_db()
    assert study.is_locked and study.locked_at is not None
    assert signature.signer == user and signature.meaning == LOCK_MEANING
    assert signature.data_sha256 == digest
    event = signature.audit_event
    assert event.action == Action.STUDY_LOCK and event.reason == LOCK_MEANING
    assert event.actor_username == "coord" and event.study_id == study.pk
    assert AuditEvent.objects.filter(action=Action.STUDY_UPDATE, study=study).exists()
    assert verify_chain().ok


def test_lock_with_a_wrong_password_is_refused_and_audited(roles):
    study = _open_study()
    user = _coordinator(study)
    with pytest.raises(SignatureRefusedError, match="password is not correct"):
        lock_study(study=study, user=user, password="guess")
    study.refresh_from_db()
    assert not study.is_locked
    assert not Signature.objects.exists()
    refused = AuditEvent.objects.get(action=Action.STUDY_LOCK_REFUSED)
    assert refused.actor_username == "coord" and refused.after == {"refused": "wrong password"}


def test_only_the_studys_coordinators_may_lock(roles):
    study = _open_study()
    _coordinator(study)
    outsider = _coordinator(StudyFactory(), username="other-coord")
    with pytest.raises(SignatureRefusedError, match="may not sign"):
        lock_study(study=study, user=outsider, password=PASSWORD)


def test_a_draft_or_locked_study_cannot_be_locked(roles):
    draft = StudyFactory()
    with pytest.raises(SignatureStateError, match="only an open study can be locked"):
        lock_study(study=draft, user=_coordinator(draft), password=PASSWORD)


def test_a_locked_study_cannot_be_locked_again_or_get_final_truth(roles):
    study = _study_with_truth()
    user = _coordinator(study)
    lock_study(study=study, user=user, password=PASSWORD)
    with pytest.raises(SignatureStateError, match=r"is locked .*only an open study"):
        lock_study(study=study, user=user, password=PASSWORD)
    with pytest.raises(SignatureStateError, match="is locked"):
        finalize_truth(study=study, user=user, password=PASSWORD)
    assert Signature.objects.filter(study=study).count() == 1


def test_finalize_truth_needs_complete_truth_then_freezes_it(roles):
    study = _study_with_truth()
    user = _coordinator(study)
    CaseFactory(study=study)  # a case without truth
    with pytest.raises(SignatureStateError, match="incomplete: 1 case x finding type pairs"):
        finalize_truth(study=study, user=user, password=PASSWORD)
    study.cases.filter(truths__isnull=True).delete()
    signature = finalize_truth(study=study, user=user, password=PASSWORD)
    assert signature.kind == Signature.Kind.TRUTH_FINALIZE
    study.refresh_from_db()
    assert study.truth_finalized_at == signature.signed_at and study.truth_finalized
    with pytest.raises(SignatureStateError, match="already finalized"):
        finalize_truth(study=study, user=user, password=PASSWORD)


def test_finalize_truth_with_a_wrong_password_is_refused_and_audited(roles):
    study = _study_with_truth()
    with pytest.raises(SignatureRefusedError):
        finalize_truth(study=study, user=_coordinator(study), password="nope")
    assert AuditEvent.objects.filter(action=Action.TRUTH_FINALIZE_REFUSED).count() == 1
    study.refresh_from_db()
    assert not study.truth_finalized


# --- the signature page ---------------------------------------------------------------------


def _lock_url(study):
    return reverse("admin:studies_study_lock", args=[study.pk])


def test_lock_page_signs_with_the_password_and_redirects(client, roles):
    study = _open_study()
    client.force_login(_coordinator(study))
    page = client.get(_lock_url(study))
    assert page.status_code == 200 and LOCK_MEANING in page.content.decode()
    response = client.post(_lock_url(study), {"password": PASSWORD})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.is_locked


def test_lock_page_refuses_a_wrong_password_without_locking(client, roles):
    study = _open_study()
    client.force_login(_coordinator(study))
    response = client.post(_lock_url(study), {"password": "wrong"})
    assert response.status_code == 403
    assert "The password is not correct" in response.content.decode()
    study.refresh_from_db()
    assert not study.is_locked


def test_lock_page_pauses_after_repeated_wrong_passwords(client, roles, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    study = _open_study()
    client.force_login(_coordinator(study))
    for _ in range(2):
        client.post(_lock_url(study), {"password": "wrong"})
    response = client.post(_lock_url(study), {"password": PASSWORD})
    assert response.status_code == 429
    study.refresh_from_db()
    assert not study.is_locked


def test_lock_page_is_forbidden_to_readers_and_other_studies_staff(client, roles):
    from django.contrib.auth.models import Group

    study = _open_study()
    reader = UserFactory(username="reader", is_staff=True)
    reader.groups.add(Group.objects.get(name=READER))
    client.force_login(reader)
    assert client.get(_lock_url(study)).status_code == 403
    client.force_login(_coordinator(StudyFactory(), username="elsewhere"))
    assert client.post(_lock_url(study), {"password": PASSWORD}).status_code == 403
    study.refresh_from_db()
    assert not study.is_locked


def test_lock_page_needs_a_login(client):
    study = _open_study()
    response = client.get(_lock_url(study))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_finalize_page_reports_incomplete_truth(client, roles):
    study = _study_with_truth()
    CaseFactory(study=study)
    client.force_login(_coordinator(study))
    url = reverse("admin:studies_study_finalize_truth", args=[study.pk])
    response = client.post(url, {"password": PASSWORD})
    assert response.status_code == 409 and "incomplete" in response.content.decode()


def test_verify_audit_detects_an_edited_signature(roles, capsys):
    from django.core.management import CommandError, call_command

    study = _open_study()
    signature = lock_study(study=study, user=_coordinator(study), password=PASSWORD)
    call_command("verify_audit")
    assert "audit chain intact" in capsys.readouterr().out
    Signature.objects.filter(pk=signature.pk).update(meaning="I did not approve anything.")
    with pytest.raises(CommandError, match=r"differs from its audit event \d+ in: meaning"):
        call_command("verify_audit")
