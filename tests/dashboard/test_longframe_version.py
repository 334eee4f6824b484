"""The data version keeps the digest of settled reads: cheap when nothing changed, exact always.

Every check compares the kept (incremental) version with one computed from nothing, so the
shortcut can never give a key that a full digest of the same data would not give.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from studyplatform.dashboard.selectors import data_version, dataversion
from studyplatform.reading.models import Assignment, Read, ReadFinding
from studyplatform.studies.models import FindingType, Truth
from tests.dashboard.builders import BuiltStudy, build_study

pytestmark = pytest.mark.django_db


def _from_nothing(built: BuiltStudy) -> str:
    with dataversion._PREFIX_LOCK:
        dataversion._PREFIXES.clear()
    return data_version(built.study)


@pytest.fixture
def streamed(monkeypatch) -> list[int]:
    """Bytes of read findings streamed by each data_version call since the last reset."""
    sizes: list[int] = []
    original = dataversion._stream

    def counting(query: Any) -> Iterator[bytes]:
        for chunk in original(query):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(dataversion, "_stream", counting)
    return sizes


def _read(built: BuiltStudy, assignment: Assignment, *, submitted_ago: timedelta) -> Read:
    submitted = timezone.now() - submitted_ago
    read = Read.objects.create(
        assignment=assignment, started_at=submitted - timedelta(seconds=40),
        submitted_at=submitted, idempotency_key=f"new-{assignment.pk}",
        submitted_by=assignment.reader.user,
    )  # fmt: skip
    for ft in built.study.finding_types.all():
        ReadFinding.objects.create(read=read, finding_type=ft, present=True, confidence=70)
    return read


def test_an_unchanged_study_streams_no_read_again(built, streamed) -> None:
    first = _from_nothing(built)
    assert sum(streamed) > 0
    streamed.clear()
    with CaptureQueriesContext(connection) as queries:
        assert data_version(built.study) == first
    assert sum(streamed) == 0
    assert len(queries) <= 14


def test_new_reads_change_the_key_as_a_full_digest_does(db, streamed) -> None:
    built = build_study("part", n_readers=2, n_cases=6, read_fraction=0.5)
    versions = [_from_nothing(built)]
    unread = list(
        Assignment.objects.filter(session__study=built.study, reads__isnull=True).order_by("pk")
    )
    # A read just submitted (not settled yet), then one submitted long enough ago to settle.
    for assignment, ago in ((unread[0], timedelta(0)), (unread[1], timedelta(hours=1))):
        _read(built, assignment, submitted_ago=ago)
        streamed.clear()
        kept = data_version(built.study)
        assert 0 < sum(streamed) < 1000  # only the new read's rows
        assert kept == _from_nothing(built) and kept not in versions
        versions.append(kept)


def test_a_correction_and_a_truth_change_change_the_key(built) -> None:
    before = _from_nothing(built)
    original = Read.objects.filter(assignment__session__study=built.study).order_by("pk")[3]
    correction = Read.objects.create(
        assignment=original.assignment, supersedes=original, correction_reason="typo",
        started_at=original.started_at, submitted_at=timezone.now(),
        idempotency_key="fix-3", submitted_by=original.submitted_by,
    )  # fmt: skip
    for f in original.findings.all():
        ReadFinding.objects.create(
            read=correction, finding_type=f.finding_type, present=not f.present,
            confidence=f.confidence,
        )  # fmt: skip
    corrected = data_version(built.study)
    assert corrected != before and corrected == _from_nothing(built)
    truth = Truth.objects.filter(case__study=built.study).order_by("pk").first()
    Truth.objects.filter(pk=truth.pk).update(present=not truth.present)
    assert data_version(built.study) not in (before, corrected)


def test_a_finding_added_to_an_old_read_drops_the_kept_digest(built) -> None:
    before = _from_nothing(built)
    added = FindingType.objects.create(
        study=built.study, code="effusion", name="Effusion", introduced_in=2
    )
    first = Read.objects.filter(assignment__session__study=built.study).order_by("pk").first()
    ReadFinding.objects.create(read=first, finding_type=added, present=False, confidence=5)
    kept = data_version(built.study)
    assert kept != before and kept == _from_nothing(built)
