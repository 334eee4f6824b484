"""The analysis and the dashboard after a protocol amendment: named version, per-type coverage."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from studyplatform.accounts.roles import COORDINATOR, READER
from studyplatform.audit.signatures import amend_protocol
from studyplatform.dashboard.models import AnalysisResult, AnalysisStatus
from studyplatform.dashboard.services import analysis_for
from studyplatform.reading.models import Assignment, Read, ReadFinding
from studyplatform.studies.models import FindingType, Protocol, Truth
from studyplatform.studies.services.protocol import freeze_protocol
from tests.dashboard.builders import BuiltStudy, build_study
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PNEUMOTHORAX = {"code": "pneumothorax", "name": "Pneumothorax", "clinically_significant": True}


def _amend(built: BuiltStudy, **changes) -> None:
    built.coordinator.groups.add(Group.objects.get(name=COORDINATOR))
    amend_protocol(
        study=built.study,
        user=built.coordinator,
        password=f"pw-{built.coordinator.username}",
        reason="pneumothorax added at the safety board's request",
        changes=changes,
    )


def _result(row: AnalysisResult) -> dict[str, Any]:
    assert row.status == AnalysisStatus.DONE and row.result is not None, row.error
    return dict(row.result)


def _read_the_rest(built: BuiltStudy) -> int:
    """Readers finish their cases after the amendment, answering every type (the new one too)."""
    study = built.study
    types = list(FindingType.objects.filter(study=study))
    for case in study.cases.all():
        Truth.objects.get_or_create(
            case=case,
            finding_type=types[-1],
            defaults={"present": case.pk % 3 == 0, "source": "synthetic"},
        )
    unread = list(
        Assignment.objects.filter(session__study=study, reads__isnull=True).select_related(
            "reader__user"
        )
    )
    truth = {(t.case_id, t.finding_type_id): t.present for t in Truth.objects.all()}
    for i, a in enumerate(unread):
        first = Read.objects.filter(assignment__session__study=study).order_by("pk").first()
        assert first is not None
        read = Read.objects.create(
            assignment=a,
            started_at=first.started_at,
            submitted_at=first.submitted_at,
            idempotency_key=f"late-{a.pk}",
            submitted_by=a.reader.user,
            protocol_version=2,
        )
        ReadFinding.objects.bulk_create(
            ReadFinding(
                read=read,
                finding_type=ft,
                present=truth[(a.case_id, ft.pk)] != (i % 7 == 0),
                confidence=80 if truth[(a.case_id, ft.pk)] != (i % 7 == 0) else 15,
            )
            for ft in types
        )
    return len(unread)


@pytest.fixture
def built(db) -> BuiltStudy:
    """A crossover study part-way (half of the reads submitted) under frozen protocol v1."""
    built = build_study("amended", findings=("nodule",), sessions_read=(1,))
    freeze_protocol(study=built.study, actor=None)
    return built


def test_report_after_an_amendment_adding_a_significant_type_is_computed_with_notes(client, built):
    _amend(built, add_finding_types=[PNEUMOTHORAX])
    client.force_login(built.statistician)
    page = client.get(reverse("dashboard:report", args=[built.study.slug]))
    body = page.content.decode()
    assert page.status_code == 200 and 'id="analysis-error"' not in body
    assert "Analysed under protocol version <strong>2</strong>" in body
    assert "pneumothorax (added in protocol v2): no read has asked it yet" in body
    assert "left out of the pooled missed-finding analysis: pneumothorax" in body
    row = AnalysisResult.objects.get(study=built.study)
    assert row.status == AnalysisStatus.DONE and row.protocol_version == 2
    # every reader is part-way (session 1 read): no complete-case analysis, and the page says why
    assert _result(row)["analysis"]["missed"] is None
    assert "not possible: no reader has finished both arms yet" in body
    # ... and every read answers, labelled, with the estimand of each rate
    every_read = _result(row)["analysis"]["missed_all_available"]
    assert [fm["finding"] for fm in every_read["findings"]] == ["nodule", "pooled"]
    assert "all available data (every read)" in body
    imrmc = _result(row)["analysis"]["all_available"]["mrmc"]["nodule"]
    assert imrmc["n_readers"] == 4 and all(
        st["ci_lower"] <= st["estimate"] <= st["ci_upper"]
        for st in imrmc["single_treatment"].values()
    )
    assert "all available data (U-statistic, iMRMC)" in body


def test_a_new_type_is_analysed_over_the_reads_that_asked_it(built):
    total = Read.objects.filter(assignment__session__study=built.study).count()
    _amend(built, add_finding_types=[PNEUMOTHORAX])
    late = _read_the_rest(built)
    row = analysis_for(study=built.study)
    assert row.status == AnalysisStatus.DONE, row.error
    coverage = {f["code"]: f for f in _result(row)["protocol"]["finding_types"]}
    assert coverage["pneumothorax"]["reads"] == late
    assert coverage["nodule"]["reads"] == total + late == coverage["nodule"]["reads_total"]
    assert coverage["pneumothorax"]["introduced_in"] == 2
    notes = _result(row)["analysis"]["notes"]
    assert (
        f"pneumothorax added in protocol v2: analysed over {late} of {total + late} reads, "
        "those opened from then on"
    ) in notes
    missed = {fm["finding"] for fm in _result(row)["analysis"]["missed"]["findings"]}
    assert {"nodule", "pneumothorax"} <= missed


def test_an_amendment_changes_the_analysis_of_the_same_reads(built):
    before = analysis_for(study=built.study)
    assert before.status == AnalysisStatus.DONE and before.protocol_version == 1
    _amend(built, finding_types={"nodule": {"ai_threshold": 0.3}})
    after = analysis_for(study=built.study)
    assert after.pk != before.pk and after.protocol_version == 2
    assert _result(after)["thresholds"] == {"nodule": 0.3}
    assert _result(before)["thresholds"] == {"nodule": 0.5}


def test_analyze_command_json_names_the_protocol_version(built):
    _amend(built, add_finding_types=[PNEUMOTHORAX])
    out = StringIO()
    call_command("analyze", built.study.slug, "--json", stdout=out)
    data = json.loads(out.getvalue())
    protocol = Protocol.objects.get(study=built.study, version=2)
    assert data["protocol"]["version"] == 2 and data["protocol"]["sha256"] == protocol.sha256
    assert [f["code"] for f in data["protocol"]["finding_types"]] == ["nodule", "pneumothorax"]
    text = StringIO()
    call_command("analyze", built.study.slug, stdout=text)
    assert f"protocol version 2 ({protocol.sha256[:12]})" in text.getvalue()


def test_dashboard_lists_each_amendment_with_signer_reason_and_changes(client, built):
    _amend(built, add_finding_types=[PNEUMOTHORAX], finding_types={"nodule": {"ai_threshold": 0.3}})
    client.force_login(built.coordinator)
    page = client.get(reverse("dashboard:study", args=[built.study.slug]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Version <strong>2</strong> in force" in body
    assert "pneumothorax added at the safety board&#x27;s request" in body
    assert built.coordinator.username in body
    assert "finding type pneumothorax (Pneumothorax) added, clinically significant" in body
    assert "nodule: AI threshold none \u2192 0.3" in body


def test_report_and_dashboard_are_forbidden_to_readers_and_other_studies_staff(client, built):
    _amend(built, add_finding_types=[PNEUMOTHORAX])
    reader = UserFactory(username="a-reader")
    reader.groups.add(Group.objects.get(name=READER))
    client.force_login(reader)
    assert client.get(reverse("dashboard:report", args=[built.study.slug])).status_code == 403
    other = build_study("other", n_readers=2, n_cases=4)
    client.force_login(other.statistician)
    assert client.get(reverse("dashboard:report", args=[built.study.slug])).status_code == 403
    assert client.get(reverse("dashboard:study", args=[built.study.slug])).status_code == 403
