"""The dashboard's figures: progress after new reads, alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from studyplatform.dashboard.selectors import study_overview
from studyplatform.prereads.models import PreRead
from studyplatform.reading.models import Assignment, Read, ReadingSession
from studyplatform.studies.models import Study
from tests.dashboard.builders import build_study

pytestmark = pytest.mark.django_db


def _read(assignment, submitted, key):
    return Read.objects.create(
        assignment=assignment, started_at=submitted - timedelta(seconds=30),
        submitted_at=submitted, idempotency_key=key, submitted_by=assignment.reader.user,
    )  # fmt: skip


def test_progress_counts_every_new_read_once_whatever_its_time(db) -> None:
    built = build_study("half", n_readers=2, n_cases=10, findings=("nodule",), read_fraction=0.5)
    first = study_overview(built.study)
    assert first.done == 20 and first.total == 40
    unread = list(Assignment.objects.filter(session__study=built.study, reads__isnull=True)[:3])
    now = timezone.now()
    _read(unread[0], now, "new-now")  # just submitted: not settled yet
    _read(unread[1], now - timedelta(days=40), "backdated")  # an old time, inserted now
    second = study_overview(built.study, now=now + timedelta(seconds=1))
    assert second.done == 22
    third = study_overview(built.study, now=now + timedelta(minutes=5))  # both settled now
    assert third.done == 22
    _read(unread[2], now + timedelta(minutes=5), "later")
    assert study_overview(built.study, now=now + timedelta(minutes=6)).done == 23
    row = next(r for r in third.progress if r.done)
    assert row.median_seconds is not None and row.percent <= 100


def test_alerts_name_idle_readers_failed_prereads_and_imbalance(db) -> None:
    built = build_study("idle", n_readers=2, n_cases=10, findings=("nodule",), read_fraction=0.5)
    PreRead.objects.filter(case__study=built.study).update(status="failed", error="boom")
    overview = study_overview(built.study, now=timezone.now() + timedelta(days=400))
    kinds = [a.kind for a in overview.alerts]
    assert kinds.count("idle_reader") == 2 and "failed_prereads" in kinds
    assert overview.failed_prereads[0].error == "boom"
    # A draft's allocation may still change: move every first-session read to one arm.
    Study.objects.filter(pk=built.study.pk).update(state="draft")
    built.study.refresh_from_db()
    arm = built.study.arms.get(name="assisted")
    Assignment.objects.filter(session__study=built.study, session__number=1).update(arm=arm)
    assert "imbalance" in [a.kind for a in study_overview(built.study).alerts]


def test_a_complete_reader_is_never_idle(built) -> None:
    ReadingSession.objects.filter(study=built.study).update(available_from=None)
    overview = study_overview(built.study, now=timezone.now() + timedelta(days=400))
    assert [a for a in overview.alerts if a.kind == "idle_reader"] == []
