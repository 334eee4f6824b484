"""The analysis task, its cache per data version, and the analyze command."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studyplatform.dashboard.models import AnalysisResult
from studyplatform.dashboard.services import analysis_for
from studyplatform.dashboard.tasks import analyze_study
from studyplatform.reading.models import Read, ReadFinding
from studyplatform.studies.models import Study

pytestmark = pytest.mark.django_db


def test_large_study_is_queued_and_the_task_run_twice_computes_once(built, monkeypatch) -> None:
    sent = []
    monkeypatch.setattr("studyplatform.celery.enqueue", lambda task, **kw: sent.append(kw))
    row = analysis_for(study=built.study, inline_rows=10)
    assert row.status == "pending" and sent == [{"analysis_id": row.pk}]
    assert analyze_study(analysis_id=row.pk) == "done"
    first = AnalysisResult.objects.get(pk=row.pk)
    assert analyze_study(analysis_id=row.pk) == "done"
    second = AnalysisResult.objects.get(pk=row.pk)
    assert second.finished_at == first.finished_at and second.result == first.result
    assert analysis_for(study=built.study, inline_rows=10).pk == row.pk  # cached
    assert len(sent) == 1


def test_a_new_read_makes_a_new_analysis_and_drops_the_old_one(built) -> None:
    first = analysis_for(study=built.study)
    original = Read.objects.filter(assignment__session__study=built.study).first()
    correction = Read.objects.create(
        assignment=original.assignment, supersedes=original, correction_reason="fix",
        started_at=original.started_at, submitted_at=original.submitted_at + timedelta(1),
        idempotency_key="fix", submitted_by=original.submitted_by,
    )  # fmt: skip
    for f in original.findings.all():
        ReadFinding.objects.create(
            read=correction, finding_type=f.finding_type, present=f.present, confidence=0
        )
    second = analysis_for(study=built.study)
    assert second.pk != first.pk and second.data_version != first.data_version
    assert list(AnalysisResult.objects.filter(study=built.study)) == [second]


def test_a_study_without_reads_reports_why(db) -> None:
    study = Study.objects.create(slug="empty", title="E", seed=1)
    row = analysis_for(study=study)
    assert row.status == "failed" and "no submitted reads" in row.error


def test_analyze_command_prints_the_cached_analysis(built) -> None:
    out = StringIO()
    call_command("analyze", "sim", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["analysis"] == (analysis_for(study=built.study).result or {})["analysis"]
    text = StringIO()
    call_command("analyze", "sim", stdout=text)
    assert "MRMC ROC" in text.getvalue() and "nodule" in text.getvalue()
    # the stored JSON orders its keys as PostgreSQL does ("assisted" before "unassisted"); the
    # text still prints the AUCs in the order its header names the arms
    auc = data["analysis"]["mrmc"]["nodule"]["treatment_value"]
    line = next(x for x in text.getvalue().splitlines() if x.strip().startswith("nodule"))
    assert f"{auc['unassisted']:.3f} / {auc['assisted']:.3f}" in line
    with pytest.raises(CommandError, match="no study"):
        call_command("analyze", "nope")


def test_an_unexpected_error_is_recorded_not_left_running(built, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("analysis.study.analyze_checked", boom)
    row = analysis_for(study=built.study)
    assert row.status == "failed" and "ZeroDivisionError" in row.error
