"""The long reads frame selector: columns, effective reads, streaming equals the frame."""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.report import LONG_COLUMNS
from studyplatform.dashboard.exports.formats import long_csv_chunks
from studyplatform.dashboard.selectors import data_version, iter_long_rows, long_reads_frame
from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.reading.models import Read, ReadFinding
from studyplatform.studies.models import Study
from tests.factories import AIModelFactory

pytestmark = pytest.mark.django_db


def test_frame_has_the_design_columns_and_one_row_per_reader_case_arm_finding(built) -> None:
    frame = long_reads_frame(built.study)
    assert tuple(frame.columns) == LONG_COLUMNS
    assert len(frame) == 4 * 30 * 2 * 2
    assert not frame.duplicated(["reader", "case", "arm", "finding"]).any()
    merged = frame.merge(built.long, on=["reader", "case", "arm", "finding"], suffixes=("", "_sim"))
    for col in ("truth", "call", "confidence", "session", "site", "modality", "manufacturer"):
        assert (merged[col].astype(str) == merged[f"{col}_sim"].astype(str)).all(), col
    assert merged["ai_probability"].to_numpy() == pytest.approx(merged["ai_probability_sim"])
    assert merged["duration_s"].to_numpy() == pytest.approx(merged["duration_s_sim"], abs=1e-3)


def test_frame_is_built_with_a_constant_number_of_queries(built) -> None:
    with CaptureQueriesContext(connection) as queries:
        long_reads_frame(built.study)
    assert len(queries) <= 12


def test_a_correction_replaces_the_answer_but_keeps_the_original_reading_time(built) -> None:
    original = Read.objects.filter(assignment__session__study=built.study).first()
    finding = original.findings.first()
    correction = Read.objects.create(
        assignment=original.assignment,
        supersedes=original,
        correction_reason="typo",
        started_at=original.submitted_at + timedelta(days=1),
        submitted_at=original.submitted_at + timedelta(days=1, seconds=5),
        idempotency_key="fix-1",
        submitted_by=original.submitted_by,
    )
    for f in original.findings.all():
        ReadFinding.objects.create(
            read=correction, finding_type=f.finding_type, present=not f.present,
            confidence=100 - f.confidence,
        )  # fmt: skip
    frame = long_reads_frame(built.study)
    assert len(frame) == 4 * 30 * 2 * 2
    a = original.assignment
    row = frame[
        (frame["reader"] == a.reader.code) & (frame["case"] == a.case.case_id)
        & (frame["arm"] == a.arm.name) & (frame["finding"] == finding.finding_type.code)
    ].iloc[0]  # fmt: skip
    assert row["confidence"] == 100 - finding.confidence
    assert row["duration_s"] == pytest.approx(
        (original.submitted_at - original.started_at).total_seconds()
    )
    # Flagged, with what was first submitted and when it was corrected.
    assert row["corrected"] == 1
    assert (row["original_call"], row["original_confidence"]) == (
        int(finding.present),
        finding.confidence,
    )
    assert row["submitted_at"].startswith(original.submitted_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert row["corrected_at"].startswith(correction.submitted_at.strftime("%Y-%m-%dT%H:%M:%S"))
    others = frame[frame["corrected"] == 0]
    assert len(others) == len(frame) - 2  # the corrected read's two findings
    assert others["corrected_at"].isna().all()
    assert (others["original_call"] == others["call"]).all()
    assert (others["original_confidence"] == others["confidence"]).all()


def test_streamed_csv_equals_the_frame(built) -> None:
    text = "".join(long_csv_chunks(iter_long_rows(built.study, chunk_size=50), rows_per_chunk=7))
    streamed = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame = long_reads_frame(built.study)
    expected = frame.astype(object).where(frame.notna(), "").astype(str)
    keys = ["reader", "case", "arm", "finding"]
    streamed = streamed.sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, expected, check_dtype=False)


def _correct(read: Read, key: str) -> Read:
    """A correction of ``read`` that flips its first finding (reads are append-only)."""
    correction = Read.objects.create(
        assignment=read.assignment, supersedes=read, correction_reason="typo",
        started_at=read.started_at, submitted_at=read.submitted_at + timedelta(days=1),
        idempotency_key=key, submitted_by=read.submitted_by,
    )  # fmt: skip
    for i, f in enumerate(read.findings.order_by("finding_type_id")):
        ReadFinding.objects.create(
            read=correction, finding_type=f.finding_type,
            present=f.present != (i == 0), confidence=f.confidence,
        )  # fmt: skip
    return correction


def test_data_version_changes_when_a_read_or_truth_changes(built) -> None:
    before = data_version(built.study)
    assert data_version(built.study) == before
    truth = built.study.cases.first().truths.first()
    truth.present = not truth.present
    truth.save()
    after_truth = data_version(built.study)
    assert after_truth != before
    _correct(Read.objects.filter(assignment__session__study=built.study).last(), "fix-1")
    assert data_version(built.study) != after_truth


def test_data_version_changes_with_significance_threshold_and_protocol_version(built) -> None:
    versions = {data_version(built.study)}
    finding = built.study.finding_types.order_by("pk").first()
    finding.clinically_significant = not finding.clinically_significant
    finding.save()
    versions.add(data_version(built.study))
    finding.ai_threshold = 0.3
    finding.save()
    versions.add(data_version(built.study))
    Study.objects.filter(pk=built.study.pk).update(protocol_version=2)
    versions.add(data_version(built.study))
    assert len(versions) == 4


def test_data_version_follows_the_pinned_models_probabilities_only(built) -> None:
    before = data_version(built.study)
    other = AIModelFactory(name="challenger", finding_codes=["nodule", "pneumothorax"])
    for case in built.study.cases.all()[:3]:
        preread = PreRead.objects.create(case=case, model=other, status=PreReadStatus.DONE)
        for finding in built.study.finding_types.all():
            PreReadFinding.objects.create(preread=preread, finding_type=finding, probability=0.5)
    assert data_version(built.study) == before  # a comparison model changes no analysis input
    pinned = PreReadFinding.objects.filter(
        preread__case__study=built.study, preread__model__name=built.study.ai_model_name
    ).first()
    pinned.probability = 1.0 - pinned.probability
    pinned.save()
    assert data_version(built.study) != before
