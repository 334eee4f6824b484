"""The column-built long frame equals the frame made from the streamed rows, value for value.

The oracle is the row-at-a-time path that the long export streams (``iter_long_rows``), sorted
and typed as the long frame was before it was built from columns.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.report import LONG_COLUMNS
from analysis.study import analyze_study
from studyplatform.dashboard.selectors import frame as columns
from studyplatform.dashboard.selectors import iter_long_rows, long_reads_frame
from studyplatform.prereads.models import PreReadFinding
from studyplatform.reading.models import Read, Reader, ReadFinding, ReadTelemetry
from studyplatform.studies.models import FindingType, Truth
from tests.dashboard.builders import BuiltStudy, build_study

pytestmark = pytest.mark.django_db

IDS = ("study", "reader", "case", "arm", "finding", "site", "modality", "manufacturer",
       "reader_specialty", "reader_role")  # fmt: skip


def _row_frame(built: BuiltStudy) -> pd.DataFrame:
    """The long frame from the streamed rows, sorted and typed as the long frame documents."""
    frame = pd.DataFrame.from_records(list(iter_long_rows(built.study)), columns=LONG_COLUMNS)
    frame = frame.sort_values(["reader", "case", "arm", "finding"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["truth"] = frame["truth"].astype("Int64")
    frame["ai_probability"] = pd.to_numeric(frame["ai_probability"]).astype("float64")
    for col in ("session", "call", "confidence", "corrected"):
        frame[col] = frame[col].astype("int64")
    for col in ("original_call", "original_confidence", "reader_years_experience"):
        frame[col] = frame[col].astype("Int64")
    frame["duration_s"] = frame["duration_s"].astype("float64")
    for col in ("slices_viewed", "slices_total", "ai_overlay_on"):
        frame[col] = frame[col].astype("Int64")
    for col in ("series_time_s", "ai_overlay_s", "ai_first_view_s"):
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return frame


def _add_telemetry(reads: list[Read]) -> None:
    """Telemetry on some reads: with and without an AI view, one read later corrected."""
    for i, read in enumerate(reads):
        ReadTelemetry.objects.create(
            read=read, series=[], slices_viewed=i % 5, slices_total=12, series_time_s=10.5 + i,
            ai_panel_shown=i % 2 == 1, ai_overlay_on=i % 2 == 1, ai_overlay_s=(i % 2) * 3.25,
            ai_first_view_s=1.5 if i % 2 else None,
        )  # fmt: skip


def _correct(read: Read, key: str, *, extra: FindingType | None = None, days: int = 1) -> Read:
    """A correction of ``read`` flipping every call; ``extra`` adds a type the read lacked."""
    correction = Read.objects.create(
        assignment=read.assignment, supersedes=read, correction_reason="typo",
        started_at=read.submitted_at + timedelta(days=days),
        submitted_at=read.submitted_at + timedelta(days=days, seconds=7, microseconds=2500),
        idempotency_key=key, submitted_by=read.submitted_by,
    )  # fmt: skip
    for f in read.findings.all():
        ReadFinding.objects.create(
            read=correction, finding_type=f.finding_type, present=not f.present,
            confidence=100 - f.confidence,
        )  # fmt: skip
    if extra is not None:
        ReadFinding.objects.create(read=correction, finding_type=extra, present=True, confidence=80)
    return correction


@pytest.fixture
def messy(built: BuiltStudy) -> BuiltStudy:
    """The built study with corrections (one corrected twice), a finding type added by an
    amendment (asked by some reads and by a correction whose original lacked it), cases
    without truth and cases without an AI probability."""
    study = built.study
    reads = list(Read.objects.filter(assignment__session__study=study).order_by("pk"))
    added = FindingType.objects.create(
        study=study, code="effusion", name="Effusion", order=9, introduced_in=2
    )
    ReadFinding.objects.bulk_create(
        [ReadFinding(read=r, finding_type=added, present=i % 2 == 0, confidence=10 * (i % 10))
         for i, r in enumerate(reads[-12:])]
    )  # fmt: skip
    _add_telemetry(reads[:4] + reads[9:11])
    _correct(reads[0], "fix-0")
    _correct(_correct(reads[5], "fix-5"), "fix-5b", days=2)
    _correct(reads[9], "fix-9", extra=added)
    cases = list(study.cases.order_by("pk"))
    Truth.objects.filter(case__in=cases[:3]).delete()
    Truth.objects.filter(case=cases[4], finding_type__code="nodule").delete()
    PreReadFinding.objects.filter(preread__case__in=cases[5:8]).delete()
    # Qualifications: one reader with all three, one with a role only, the rest none.
    first, second = Reader.objects.filter(sessions__study=study).distinct().order_by("code")[:2]
    Reader.objects.filter(pk=first.pk).update(
        specialty="thoracic", years_experience=0, role="fellow"
    )
    Reader.objects.filter(pk=second.pk).update(role="resident")
    return built


def _assert_same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(LONG_COLUMNS) == list(old.columns)
    assert len(new) == len(old)
    for col in LONG_COLUMNS:
        if col in IDS:
            assert isinstance(new[col].dtype, pd.CategoricalDtype), col
            assert list(new[col].cat.categories) == sorted(set(old[col])), col
            assert new[col].astype(str).tolist() == old[col].tolist(), col
        else:
            pd.testing.assert_series_equal(new[col], old[col], check_exact=True, obj=col)


def test_column_frame_equals_the_row_frame_with_corrections_gaps_and_an_amendment(messy):
    new = long_reads_frame(messy.study)
    old = _row_frame(messy)
    _assert_same(new, old)
    # The fixture reaches every branch: corrected rows, a lacking original, the gaps.
    assert new["corrected"].sum() == 2 + 2 + 3
    assert new["original_call"].isna().sum() == 1
    # Three cases without truth, one without nodule truth, the 13 effusion rows (no truth).
    assert new["truth"].isna().sum() == 3 * 2 * 2 * 4 + 2 * 4 + 13
    assert new["ai_probability"].isna().sum() > 3 * 2 * 2 * 4
    assert (new["corrected_at"].notna() == (new["corrected"] == 1)).all()
    # Six reads with telemetry (two of them corrected: the correction keeps the original's).
    with_telemetry = new.drop_duplicates(["reader", "case", "arm"])["slices_total"].notna()
    assert with_telemetry.sum() == 6
    assert new.loc[new["corrected"] == 1, "slices_total"].notna().sum() == 2 + 3
    assert set(new["reader_role"]) == {"fellow", "resident", ""}
    assert (
        new["reader_years_experience"].isna().any() and (new["reader_years_experience"] == 0).any()
    )


def test_column_frame_of_an_untouched_study_equals_the_row_frame(built):
    _assert_same(long_reads_frame(built.study), _row_frame(built))


def test_copy_and_portable_readers_return_the_same_columns(messy):
    copied = columns._postgresql_reads(messy.study)
    portable = columns._portable_reads(messy.study)
    keys = ["read", "finding_type"]
    pd.testing.assert_frame_equal(
        copied.sort_values(keys, ignore_index=True), portable.sort_values(keys, ignore_index=True)
    )
    assert (copied.dtypes == np.int64).all()


def test_analysis_of_the_column_frame_equals_that_of_the_row_frame(messy):
    def run(long: pd.DataFrame) -> dict[str, object]:
        return analyze_study(
            long, significant=None, thresholds={"nodule": 0.5, "pneumothorax": 0.5}
        )

    assert run(long_reads_frame(messy.study)) == run(_row_frame(messy))


def test_study_without_reads_gives_an_empty_frame_with_the_columns(db):
    empty = build_study("empty", n_readers=2, n_cases=4, read_fraction=0.0, staff=False)
    frame = long_reads_frame(empty.study)
    assert list(frame.columns) == list(LONG_COLUMNS) and len(frame) == 0


@pytest.mark.parametrize("start", [0, 10**9 * 10**6, 1_789_000_000_123_456])
def test_durations_round_as_python_does(start):
    micros = np.arange(start, start + 300_000, dtype=np.int64)
    expected = [round(float(m / 1e6), 3) for m in micros - start]
    assert columns._durations(micros - start).tolist() == expected


def test_iso_times_match_isoformat_in_milliseconds():
    from datetime import UTC, datetime

    moments = [
        datetime(2026, 1, 31, 8, 15, 30, 123999, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999, tzinfo=UTC),
        datetime(2026, 1, 31, 8, 15, 30, tzinfo=UTC),
    ]
    micros = np.array([columns._micros(m) for m in moments], dtype=np.int64)
    assert columns._iso_times(micros).tolist() == [
        m.isoformat(timespec="milliseconds") for m in moments
    ]
