"""A study's long reads frame built column by column: set-based queries straight into numpy.

The same frame as the rows of :func:`~studyplatform.dashboard.selectors.longframe.iter_long_rows`
(the streamed export), sorted by reader, case, arm and finding type; see that module for what a
row holds. Here nothing runs in Python per read: the read findings come from one query (on
PostgreSQL ``COPY ... TO STDOUT`` as CSV, parsed by pandas' C reader while it streams), cases,
truth, AI probabilities, readers, arms and finding types from one small query each, and every
lookup, the correction columns, the sort and the ISO times are numpy operations on whole
columns. IDs (study, reader, case, arm, finding type, site, modality, manufacturer) are
categoricals with their observed values as sorted categories, so a million rows take a few
bytes per ID instead of an object pointer each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import BigIntegerField, F, Func, IntegerField, Value
from django.db.models.functions import Cast, Coalesce
from numpy.typing import NDArray

from analysis.report import LONG_COLUMNS
from studyplatform.dashboard.selectors.longframe import reader_qualifications, study_ai_model
from studyplatform.prereads.models import AIModel, PreReadFinding, PreReadStatus
from studyplatform.reading.models import Read, ReadFinding, ReadTelemetry
from studyplatform.studies.models import Case, Study, Truth

Ints = NDArray[np.int64]

# One row per read finding of the study; every value an integer (times in microseconds).
_READ_COLUMNS = (
    "read", "finding_type", "present", "confidence", "reader", "case", "arm", "session",
    "assignment", "supersedes", "started_us", "submitted_us",
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CHUNK_ROWS = 50_000
_WORK_MEM = "64MB"
_FORMAT_SLICE = 65_536


class _EpochMicroseconds(Func):
    """Microseconds since 1970 of a timestamp with time zone, as a bigint (PostgreSQL)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


def _findings_query(study: Study) -> Any:
    # Training reads (the training session's) are never analysed.
    return ReadFinding.objects.filter(
        read__assignment__session__study_id=study.pk, read__assignment__session__training=False
    ).order_by()


@contextmanager
def bulk_read_settings() -> Iterator[None]:
    """A transaction whose queries may hash a study's reads in memory, without JIT.

    With PostgreSQL's default ``work_mem`` (4 MB) the joins of a million read findings to their
    reads and assignments spill to disk in 8-16 batches, about twice as slow; JIT compiling
    those plans costs more than it saves. Both settings are local to the transaction (to the
    caller's, when it has one).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
                    [_WORK_MEM],
                )
        yield


@contextmanager
def copy_out(query: Any, options: str = "") -> Iterator[Iterator[bytes]]:
    """The rows of a values query as PostgreSQL's ``COPY (query) TO STDOUT`` writes them.

    ``options`` follows ``TO STDOUT`` (e.g. ``" WITH (FORMAT csv)"``); the chunks are read
    while they stream, inside the ``with`` block only.
    """
    sql, params = query.query.get_compiler(using=query.db).as_sql()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        with raw.copy(f"COPY ({sql}) TO STDOUT{options}", params) as copy:
            yield (bytes(chunk) for chunk in copy)


def _postgresql_reads(study: Study) -> pd.DataFrame:
    """Every read finding of the study as integer columns, through COPY into pandas' reader."""
    query = (
        _findings_query(study)
        .annotate(
            present_int=Cast("present", IntegerField()),
            supersedes_or_0=Coalesce(F("read__supersedes_id"), Value(0)),
            started_us=_EpochMicroseconds("read__started_at"),
            submitted_us=_EpochMicroseconds("read__submitted_at"),
        )
        .values_list(
            "read_id", "finding_type_id", "present_int", "confidence",
            "read__assignment__reader_id", "read__assignment__case_id",
            "read__assignment__arm_id", "read__assignment__session__number",
            "read__assignment_id", "supersedes_or_0", "started_us", "submitted_us",
        )
    )  # fmt: skip
    with bulk_read_settings(), copy_out(query, " WITH (FORMAT csv)") as chunks:
        stream = io.BufferedReader(_ChunkReader(chunks), 1 << 20)
        return pd.read_csv(
            stream, header=None, names=list(_READ_COLUMNS), dtype=np.int64, engine="c"
        )


def _portable_reads(study: Study) -> pd.DataFrame:
    """The same columns from any database, through a server-side cursor in chunks."""
    query = _findings_query(study).values_list(
        "read_id", "finding_type_id", "present", "confidence",
        "read__assignment__reader_id", "read__assignment__case_id",
        "read__assignment__arm_id", "read__assignment__session__number",
        "read__assignment_id", "read__supersedes_id", "read__started_at", "read__submitted_at",
    )  # fmt: skip
    parts: list[pd.DataFrame] = []
    # In a transaction: outside one, PostgreSQL would materialize a WITH HOLD cursor first.
    with transaction.atomic():
        rows = query.iterator(chunk_size=_CHUNK_ROWS)
        while chunk := list(islice(rows, _CHUNK_ROWS)):
            part = pd.DataFrame.from_records(chunk, columns=list(_READ_COLUMNS))
            for col in ("started_us", "submitted_us"):
                part[col] = _to_microseconds(part[col])
            part["supersedes"] = part["supersedes"].fillna(0)
            parts.append(part.astype(np.int64))
    if not parts:
        return pd.DataFrame({c: np.empty(0, np.int64) for c in _READ_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def _to_microseconds(moments: pd.Series) -> pd.Series:
    utc = pd.to_datetime(moments, utc=True).dt.tz_localize(None).astype("datetime64[us]")
    return utc.astype(np.int64)


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte strings (COPY's rows)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        pieces, size = [self._rest], len(self._rest)
        # Gather COPY's many small rows until the caller's buffer is full.
        for chunk in self._chunks:
            pieces.append(chunk)
            size += len(chunk)
            if size >= len(view):
                break
        data = b"".join(pieces)
        n = min(len(view), len(data))
        view[:n] = data[:n]
        self._rest = data[n:]
        return n


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _keyed(keys: Ints, pks: Sequence[int]) -> NDArray[np.intp]:
    """Position in ``pks`` of each of ``keys`` (every key is one of ``pks``)."""
    table = np.asarray(pks, dtype=np.int64)
    order = np.argsort(table, kind="stable")
    at = np.searchsorted(table, keys, sorter=order)
    found = order[np.minimum(at, len(table) - 1)] if len(table) else at
    if len(keys) and (not len(table) or (table[found] != keys).any()):
        raise LookupError("a read refers to a row outside its study")
    return found


def _labels(index: NDArray[np.intp], names: Sequence[str]) -> pd.Categorical:
    """``names[index]`` as a categorical of the observed names, sorted."""
    per_entity = pd.Categorical(list(names))  # sorted categories; equal names share one
    codes = per_entity.codes[index] if len(index) else np.empty(0, np.int8)
    cat = pd.Categorical.from_codes(codes, categories=per_entity.categories)
    return cat.remove_unused_categories()


def _nullable(values: NDArray[Any], missing: NDArray[np.bool_]) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64), missing)


def _iso_times(micros: Ints) -> NDArray[np.object_]:
    """``2026-01-31T08:15:30.123+00:00`` per time (milliseconds truncated, as ``isoformat``).

    Each distinct time (to the millisecond) is formatted once, and every row with it shares
    that one string (a read's findings, and reads that began at the same moment); in slices,
    so numpy's fixed-width text stays small.
    """
    millis = np.floor_divide(micros, 1000)
    distinct, at = np.unique(millis, return_inverse=True)
    strings = np.empty(len(distinct), dtype=object)
    for start in range(0, len(distinct), _FORMAT_SLICE):
        part = distinct[start : start + _FORMAT_SLICE].astype("datetime64[ms]")
        text = np.strings.add(np.datetime_as_string(part, unit="ms"), "+00:00")
        strings[start : start + _FORMAT_SLICE] = text.astype(object)
    return strings[at.reshape(-1)]


def _durations(micros: Ints) -> NDArray[np.float64]:
    """Seconds rounded to milliseconds, exactly as Python's ``round(seconds, 3)``.

    Off a half millisecond every value rounds to the nearest millisecond; on one, whether the
    float ``seconds`` lies above or below the half decides, so Python's own ``round`` settles
    those few.
    """
    seconds = micros / 1e6
    out = np.floor_divide(micros + 500, 1000) / 1e3
    half = np.flatnonzero(np.remainder(micros, 1000) == 500)
    out[half] = [round(float(s), 3) for s in seconds[half]]
    return out


def _originals(study: Study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Times per assignment and answers per assignment and finding type of the original reads
    that a correction replaced (few rows: corrections are rare)."""
    rows = list(
        ReadFinding.objects.filter(
            read__assignment__session__study=study,
            read__assignment__session__training=False,
            read__supersedes__isnull=True,
            read__superseded_by__isnull=False,
        ).values_list(
            "read__assignment_id", "finding_type", "present", "confidence",
            "read__started_at", "read__submitted_at",
        )
    )  # fmt: skip
    answers = pd.DataFrame(
        [(a, f, int(p), c) for a, f, p, c, _, _ in rows],
        columns=["assignment", "finding_type", "original_call", "original_confidence"],
        dtype=np.int64,
    )
    times = pd.DataFrame(
        sorted({(a, _micros(s), _micros(e)) for a, _, _, _, s, e in rows}),
        columns=["assignment", "started_us", "submitted_us"],
        dtype=np.int64,
    )
    return times, answers


def _per_case(
    study: Study, model: AIModel | None, case_pks: list[int], finding_pks: list[int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Truth (0/1, NaN when none) and AI probability (NaN when none) per case x finding type."""
    truth = np.full((len(case_pks), len(finding_pks)), np.nan)
    ai = np.full((len(case_pks), len(finding_pks)), np.nan)
    for target, values in (
        (truth, Truth.objects.filter(case__study=study, case__training=False).values_list(
            "case_id", "finding_type_id", "present")),
        (ai, () if model is None else PreReadFinding.objects.filter(
            preread__case__study=study, preread__case__training=False, preread__model=model,
            preread__status=PreReadStatus.DONE,
        ).values_list("preread__case_id", "finding_type_id", "probability")),
    ):  # fmt: skip
        table = np.array(list(values), dtype=np.float64).reshape(-1, 3)
        if len(table):
            keys = table[:, :2].astype(np.int64)
            target[_keyed(keys[:, 0], case_pks), _keyed(keys[:, 1], finding_pks)] = table[:, 2]
    return truth, ai


def _telemetry(study: Study, assignment: Ints) -> dict[str, Any]:
    """The telemetry columns for rows of ``assignment``: each assignment's original read's
    (a correction keeps the reading of the read it corrects); missing where there is none."""
    rows = np.array(
        list(
            ReadTelemetry.objects.filter(
                read__assignment__session__study=study, read__supersedes__isnull=True
            ).values_list(
                "read__assignment_id",
                "slices_viewed",
                "slices_total",
                "series_time_s",
                "ai_overlay_on",
                "ai_overlay_s",
                "ai_first_view_s",
            )
        ),
        dtype=np.float64,  # None (no first AI view) becomes NaN
    ).reshape(-1, 7)
    table = rows[:, 0].astype(np.int64)
    order = np.argsort(table, kind="stable")
    at = np.searchsorted(table, assignment, sorter=order)
    found = order[np.minimum(at, len(table) - 1)] if len(table) else at
    has = (table[found] == assignment) if len(table) else np.zeros(len(assignment), dtype=bool)
    values = rows[found] if len(table) else np.full((len(assignment), 7), np.nan)
    values[~has] = np.nan
    whole = np.nan_to_num(values[:, 1:5]).astype(np.int64)
    return {
        "slices_viewed": _nullable(whole[:, 0], ~has),
        "slices_total": _nullable(whole[:, 1], ~has),
        "series_time_s": values[:, 3],
        "ai_overlay_on": _nullable(whole[:, 3], ~has),
        "ai_overlay_s": values[:, 5],
        "ai_first_view_s": values[:, 6],
    }  # fmt: skip


def _effective(study: Study) -> pd.DataFrame:
    if connection.vendor == "postgresql":
        reads = _postgresql_reads(study)
    else:
        reads = _portable_reads(study)
    superseded = Read.objects.filter(
        assignment__session__study=study, supersedes__isnull=False
    ).values_list("supersedes_id", flat=True)
    replaced = np.fromiter(superseded, dtype=np.int64)
    if len(replaced):
        reads = reads[~np.isin(reads["read"].to_numpy(), replaced)]
    return reads


def _return_freed_memory() -> None:
    """Hand the heap pages freed while building the frame back to the operating system.

    glibc raises its mmap threshold to the size of a freed large block, so the parser's and the
    sort's temporary columns come from the heap afterwards and stay resident once freed (about
    140 MiB at a million rows, on top of the frame's own 110 MiB) unless trimmed. Elsewhere
    (another C library) nothing is done.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _qualification_columns(
    reader_at: Ints, qualified: list[tuple[str, str, int | None, str]]
) -> dict[str, Any]:
    """The readers' qualifications on each row: specialty and role as categoricals (empty
    when not stated), years of experience a nullable integer."""
    years = np.array([q[2] if q[2] is not None else -1 for q in qualified], dtype=np.int64)
    at_years = years[reader_at] if len(years) else np.empty(0, np.int64)
    return {
        "reader_specialty": _labels(reader_at, [q[1] for q in qualified]),
        "reader_years_experience": _nullable(np.maximum(at_years, 0), at_years < 0),
        "reader_role": _labels(reader_at, [q[3] for q in qualified]),
    }


def long_reads_frame(study: Study) -> pd.DataFrame:
    """The study's long reads frame (LONG_COLUMNS, in that order); empty if no reads.

    One row per finding of each effective read, sorted by reader, case, arm and finding type
    (as text), then by read and finding type. ``study``, ``reader``, ``case``, ``arm``,
    ``finding``, ``site``, ``modality`` and ``manufacturer`` are categoricals (observed values,
    sorted); ``truth`` a nullable integer (missing where the case has no truth for that
    finding type); ``ai_probability`` a float (NaN without a finished pre-read of the pinned
    model); ``session``, ``call``, ``confidence`` and ``corrected`` integers; ``duration_s`` a
    float; ``original_call`` and ``original_confidence`` nullable integers (missing for a
    finding type the original read lacked); ``started_at``, ``submitted_at`` and
    ``corrected_at`` strings (``corrected_at`` missing on an uncorrected row: NaN, or None in
    an object column when no read was corrected); ``slices_viewed``, ``slices_total`` and
    ``ai_overlay_on`` nullable integers and ``series_time_s``, ``ai_overlay_s`` and
    ``ai_first_view_s`` floats, missing (NaN) for a read without telemetry.
    """
    frame = _frame(study)
    _return_freed_memory()  # after the build's own temporaries are gone
    return frame


def _frame(study: Study) -> pd.DataFrame:
    reads = _effective(study)
    model = study_ai_model(study)
    qualified = reader_qualifications(study)
    readers = {pk: q[0] for pk, q in qualified.items()}
    arms = dict(study.arms.values_list("pk", "name"))
    findings = dict(study.finding_types.values_list("pk", "code"))
    cases = list(
        Case.objects.filter(study=study, training=False).values_list(
            "pk", "case_id", "site__code", "modality", "manufacturer"
        )
    )
    case_pks = [c[0] for c in cases]
    finding_pks = list(findings)

    col = {c: reads[c].to_numpy() for c in _READ_COLUMNS}
    del reads
    case_at = _keyed(col["case"], case_pks)
    finding_at = _keyed(col["finding_type"], finding_pks)
    reader_at = _keyed(col["reader"], list(readers))
    ids = {
        "reader": _labels(reader_at, list(readers.values())),
        "case": _labels(case_at, [c[1] for c in cases]),
        "arm": _labels(_keyed(col["arm"], list(arms)), list(arms.values())),
        "finding": _labels(finding_at, list(findings.values())),
    }
    order = np.lexsort(
        (col["finding_type"], col["read"], *(ids[k].codes for k in reversed(list(ids))))
    )
    col = {k: v[order] for k, v in col.items()}
    case_at, finding_at, reader_at = case_at[order], finding_at[order], reader_at[order]
    ids = {k: v.take(order) for k, v in ids.items()}
    n = len(order)

    corrected = col["supersedes"] != 0
    started, submitted = col["started_us"].copy(), col["submitted_us"].copy()
    call, confidence = col["present"], col["confidence"]
    original_call, original_confidence = call.copy(), confidence.copy()
    original_missing = np.zeros(n, dtype=bool)
    corrected_at = np.full(n, None, dtype=object)
    at = np.flatnonzero(corrected)
    if len(at):
        times, answers = _originals(study)
        rows = pd.DataFrame({"assignment": col["assignment"][at], "finding_type":
                             col["finding_type"][at]})  # fmt: skip
        first = rows.merge(times, how="left", on="assignment", validate="many_to_one")
        has_times = first["started_us"].notna().to_numpy()
        corrected_at[at] = _iso_times(submitted[at])
        started[at[has_times]] = first["started_us"].to_numpy()[has_times]
        submitted[at[has_times]] = first["submitted_us"].to_numpy()[has_times]
        said = rows.merge(answers, how="left", on=["assignment", "finding_type"])
        lacked = said["original_call"].isna().to_numpy()
        original_missing[at] = lacked
        original_call[at] = said["original_call"].fillna(0).to_numpy(np.int64)
        original_confidence[at] = said["original_confidence"].fillna(0).to_numpy(np.int64)

    truth, ai = _per_case(study, model, case_pks, finding_pks)
    truth_values = truth[case_at, finding_at]
    sites = _labels(case_at, [c[2] for c in cases])
    frame = pd.DataFrame(
        {
            "study": pd.Categorical.from_codes(
                np.zeros(n, np.int8), categories=pd.Index([study.slug])
            ),
            "reader": ids["reader"],
            "case": ids["case"],
            "arm": ids["arm"],
            "session": col["session"],
            "finding": ids["finding"],
            "truth": _nullable(np.nan_to_num(truth_values), np.isnan(truth_values)),
            "call": call,
            "confidence": confidence,
            "ai_probability": ai[case_at, finding_at],
            "site": sites,
            "modality": _labels(case_at, [c[3] for c in cases]),
            "manufacturer": _labels(case_at, [c[4] for c in cases]),
            "started_at": pd.array(_iso_times(started), dtype="str"),
            "submitted_at": pd.array(_iso_times(submitted), dtype="str"),
            "duration_s": _durations(submitted - started),
            "corrected": corrected.astype(np.int64),
            "original_call": _nullable(original_call, original_missing),
            "original_confidence": _nullable(original_confidence, original_missing),
            # Strings with NaN where uncorrected; all None (object) when nothing was corrected,
            # as pandas infers for the rows' values.
            "corrected_at": pd.array(corrected_at, dtype="str") if len(at) else corrected_at,
            **_telemetry(study, col["assignment"]),
            **_qualification_columns(reader_at, list(qualified.values())),
        },
        columns=list(LONG_COLUMNS),
        copy=False,  # the columns are this function's own arrays
    )
    return frame
