"""The admin refuses every change to a locked study or final truth, even a crafted POST.

The read-only widgets are only what the pages show; these tests post what a browser with the
widgets removed would send, and check that nothing changed and nothing was audited.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from studyplatform.audit.models import AuditEvent
from studyplatform.reading.models import Enrolment, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Case, Site, Study, Truth
from tests.factories import FindingTypeFactory, ReaderFactory, SiteFactory, UserFactory
from tests.reading.helpers import make_study
from tests.signing import sign_final_truth, sign_lock

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Any) -> Any:
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _open(n_cases: int = 4) -> Study:
    study = make_study(n_cases=n_cases)
    randomize_study(study=study)
    open_study(study=study)
    return study


@pytest.fixture
def locked(roles: None) -> Study:
    study = _open()
    sign_lock(study)
    return study


def _events() -> int:
    return AuditEvent.objects.count()


def _session_form(study: Study, reader_pk: int, number: int) -> dict[str, Any]:
    return {
        "study": study.pk,
        "reader": reader_pk,
        "number": number,
        "available_from_0": "",
        "available_from_1": "",
        "washout_waiver_reason": "",
    }


def test_admin_adds_an_enrolment_and_a_session_to_an_open_study(admin_client):
    # The control for the refusals below: the same posts succeed while the study is open.
    study = _open()
    reader = ReaderFactory(code="R-new")
    enrol = admin_client.post(
        reverse("admin:reading_enrolment_add"), {"study": study.pk, "reader": reader.pk}
    )
    assert enrol.status_code == 302, enrol.content.decode()[:3000]
    session = admin_client.post(
        reverse("admin:reading_readingsession_add"), _session_form(study, reader.pk, 1)
    )
    assert session.status_code == 302, session.content.decode()[:3000]
    assert Enrolment.objects.filter(study=study, reader=reader).exists()


def test_a_locked_study_accepts_no_new_enrolment_or_session_from_the_admin(admin_client, locked):
    reader = ReaderFactory(code="R-late")
    events = _events()

    enrol = admin_client.post(
        reverse("admin:reading_enrolment_add"), {"study": locked.pk, "reader": reader.pk}
    )
    session = admin_client.post(
        reverse("admin:reading_readingsession_add"), _session_form(locked, reader.pk, 3)
    )

    assert enrol.status_code == 403 and session.status_code == 403
    assert not Enrolment.objects.filter(reader=reader).exists()
    assert not ReadingSession.objects.filter(reader=reader).exists()
    assert _events() == events


def test_a_locked_studys_enrolments_and_sessions_cannot_be_changed_or_deleted(admin_client, locked):
    enrolment = Enrolment.objects.filter(study=locked).first()
    session = ReadingSession.objects.filter(study=locked).first()
    assert enrolment is not None and session is not None
    events = _events()

    change = admin_client.post(
        reverse("admin:reading_readingsession_change", args=[session.pk]),
        _session_form(locked, session.reader_id, 9),
    )
    delete = admin_client.post(
        reverse("admin:reading_enrolment_delete", args=[enrolment.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        reverse("admin:reading_enrolment_changelist"),
        {"action": "delete_selected", "_selected_action": [enrolment.pk], "post": "yes"},
    )

    assert change.status_code == 403 and delete.status_code == 403
    assert bulk.status_code in (200, 403)
    session.refresh_from_db()
    assert session.number != 9 and Enrolment.objects.filter(pk=enrolment.pk).exists()
    assert _events() == events


def test_a_locked_studys_case_and_truth_refuse_crafted_posts(admin_client, locked):
    case = locked.cases.order_by("pk").first()
    assert case is not None
    truth = case.truths.first()
    assert truth is not None
    untold = FindingTypeFactory(study=locked, code="fracture")  # no truth yet: a valid add form
    events = _events()

    case_change = admin_client.post(
        reverse("admin:studies_case_change", args=[case.pk]),
        {"study": locked.pk, "case_id": "RENAMED", "site": case.site_id, "modality": "DX"},
    )
    case_delete = admin_client.post(
        reverse("admin:studies_case_delete", args=[case.pk]), {"post": "yes"}
    )
    truth_change = admin_client.post(
        reverse("admin:studies_truth_change", args=[truth.pk]),
        {
            "case": case.pk,
            "finding_type": truth.finding_type_id,
            "present": "" if truth.present else "on",
            "source": "import",
        },
    )
    truth_add = admin_client.post(
        reverse("admin:studies_truth_add"),
        {"case": case.pk, "finding_type": untold.pk, "present": "on", "source": "import"},
    )

    assert [r.status_code for r in (case_change, case_delete, truth_change, truth_add)] == [403] * 4
    assert Case.objects.get(pk=case.pk).case_id == case.case_id
    assert Truth.objects.get(pk=truth.pk).present == truth.present
    assert not Truth.objects.filter(finding_type=untold).exists()
    assert _events() == events


def test_final_truth_refuses_admin_changes_while_the_case_stays_editable(admin_client, roles):
    study = make_study(n_cases=2)
    sign_final_truth(study)
    case = study.cases.order_by("pk").first()
    assert case is not None
    truth = case.truths.first()
    assert truth is not None
    events = _events()

    change = admin_client.post(
        reverse("admin:studies_truth_change", args=[truth.pk]),
        {
            "case": case.pk,
            "finding_type": truth.finding_type_id,
            "present": "" if truth.present else "on",
            "source": "adjudication",
        },
    )
    delete = admin_client.post(
        reverse("admin:studies_truth_delete", args=[truth.pk]), {"post": "yes"}
    )
    case_delete = admin_client.post(
        reverse("admin:studies_case_delete", args=[case.pk]), {"post": "yes"}
    )

    assert [change.status_code, delete.status_code, case_delete.status_code] == [403, 403, 403]
    stored = Truth.objects.get(pk=truth.pk)
    assert (stored.present, stored.source) == (truth.present, truth.source)
    assert _events() == events
    # The case's own fields are not truth: they may still change before the lock.
    page = admin_client.get(reverse("admin:studies_case_change", args=[case.pk]))
    assert page.status_code == 200 and 'name="_save"' in page.content.decode()


def test_a_site_with_cases_in_a_locked_study_cannot_be_renamed_or_deleted(admin_client, locked):
    site = Site.objects.get(code="north")
    unused = SiteFactory(code="unused", name="Unused")
    events = _events()

    rename = admin_client.post(
        reverse("admin:studies_site_change", args=[site.pk]), {"code": "north", "name": "Renamed"}
    )
    delete = admin_client.post(
        reverse("admin:studies_site_delete", args=[site.pk]), {"post": "yes"}
    )

    assert rename.status_code == 403 and delete.status_code == 403
    assert Site.objects.get(pk=site.pk).name == site.name
    assert _events() == events
    # A site with no case in a locked study stays editable.
    ok = admin_client.post(
        reverse("admin:studies_site_change", args=[unused.pk]), {"code": "unused", "name": "Used"}
    )
    assert ok.status_code == 302 and Site.objects.get(pk=unused.pk).name == "Used"
