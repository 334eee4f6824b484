"""The analysis cache key: a digest of every input value a study's analysis uses.

The read findings are most of those values (a million rows in a large study) and are
append-only (a PostgreSQL trigger refuses UPDATE and DELETE), so their digest is kept per
process as a prefix: the sha256 state after every finding of the study's reads up to a
watermark read ID, in (read, finding type) order. A call feeds a copy of that state the
findings of newer reads only, which gives the same digest as feeding every row again. The
watermark moves only over settled reads (submitted ``_SETTLE`` ago: every transaction that took
a smaller ID has committed by then, as the dashboard's read counts also assume), and the prefix
is dropped if a finding is ever added to a read it may cover. Truth, cases, AI probabilities
and the protocol are small and are read every time, so a direct update of any of them changes
the key at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from studyplatform.audit.models import canonical_json
from studyplatform.dashboard.selectors.frame import bulk_read_settings, copy_out
from studyplatform.dashboard.selectors.longframe import ANALYSIS_SCHEMA
from studyplatform.prereads.models import PreReadFinding, PreReadStatus
from studyplatform.prereads.selectors import PinnedModelError, finding_thresholds, pinned_model
from studyplatform.reading.models import Read, Reader, ReadFinding
from studyplatform.studies.models import Case, Study, Truth


class _Digest:
    """A sha256 fed section by section, one ``repr`` line per input row, in a fixed order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._lines: list[str] = []

    def section(self, name: str, rows: Iterable[Any]) -> None:
        self._hash.update(f"\x00{name}\x00".encode())
        for row in rows:
            self._lines.append(repr(row))
            if len(self._lines) >= _DIGEST_SLICE:
                self._flush()
        self._flush()

    def section_bytes(self, name: str, chunks: Iterable[bytes]) -> None:
        self._hash.update(f"\x00{name}\x00".encode())
        for chunk in chunks:
            self._hash.update(chunk)

    def _flush(self) -> None:
        if self._lines:
            self._hash.update(("\n".join(self._lines) + "\n").encode())
            self._lines = []

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


_DIGEST_SLICE = 10_000


def _stream(query: Any) -> Iterator[bytes]:
    """The rows of a values query as text lines, streamed in constant memory.

    On PostgreSQL the server writes them (``COPY ... TO STDOUT``: no Python object per row,
    several times faster than iterating a cursor); elsewhere one ``repr`` line per row through
    a server-side cursor. Either form is a fixed function of the values, in the query's order.
    """
    if connection.vendor == "postgresql":
        with copy_out(query) as chunks:
            yield from chunks
        return
    # In a transaction: outside one, the server-side cursor is declared WITH HOLD and PostgreSQL
    # would materialize the whole result first (see longframe._effective_findings).
    with transaction.atomic():
        lines: list[str] = []
        for row in query.iterator(chunk_size=_DIGEST_SLICE):
            lines.append(repr(row))
            if len(lines) >= _DIGEST_SLICE:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        yield ("\n".join(lines) + "\n").encode()


def data_version(study: Study) -> str:
    """A digest of every input value the analysis of ``study`` uses.

    In a fixed order: the analysis schema, the protocol version and the pinned model (name,
    version, sha256); arms; finding types with significance and thresholds; readers; cases
    (site, modality, manufacturer); truth values and locations; the pinned model's pre-read
    probabilities; and every read's findings (read, assignment, the read a correction
    supersedes, finding, call, confidence: reads are append-only, so a read's ID stands for its
    times and its marks). The FROC acceptance rule is in the protocol, whose digest the cache
    key holds. Any change
    of any of these values changes the version, whatever the counts or ID sums.

    The reads enter as their own digest (:func:`_reads_digest`): streamed (PostgreSQL's COPY,
    else a server-side cursor) and hashed chunk by chunk, in memory for one chunk only, and
    after the first call of a process only the reads newer than the settled ones.
    """
    digest = _Digest()
    current = Study.objects.get(pk=study.pk)  # the stored protocol and pin, not the caller's
    try:
        model = pinned_model(current)
        pin_problem = ""
    except PinnedModelError as error:  # the analysis fails with this message; key it too
        model, pin_problem = None, str(error)
    pin = (current.ai_model_name, current.ai_model_version, current.ai_model_sha256)
    digest.section(
        "study", [(ANALYSIS_SCHEMA, study.pk, current.protocol_version, *pin, pin_problem)]
    )
    digest.section("arms", study.arms.order_by("pk").values_list("pk", "name", "shows_ai"))
    codes = dict(study.finding_types.values_list("pk", "code"))
    digest.section(
        "finding_types",
        study.finding_types.order_by("pk").values_list(
            "pk", "code", "clinically_significant", "ai_threshold", "introduced_in"
        ),
    )
    digest.section("thresholds", sorted(finding_thresholds(current, model).items()))
    digest.section(
        "readers",
        # The qualifications too: they make the report's reader subgroups.
        Reader.objects.filter(sessions__study=study)
        .values_list("pk", "code", "specialty", "years_experience", "role")
        .distinct()
        .order_by("pk"),
    )
    digest.section(
        "cases",
        Case.objects.filter(study=study)
        .order_by("pk")
        # ``training``: a training case leaves the analysis.
        .values_list("pk", "case_id", "site__code", "modality", "manufacturer", "training"),
    )
    digest.section(
        "truth",
        (
            # The location too: its lesions decide how the readers' marks are scored.
            (case, codes[finding], present, canonical_json(location))
            for case, finding, present, location in Truth.objects.filter(case__study=study)
            .order_by("case_id", "finding_type_id")
            .values_list("case_id", "finding_type_id", "present", "location")
        ),
    )
    probabilities: Iterable[tuple[Any, ...]] = ()
    if model is not None:
        probabilities = (
            (case, codes[finding], probability)
            for case, finding, probability in PreReadFinding.objects.filter(
                preread__case__study=study,
                preread__model=model,
                preread__status=PreReadStatus.DONE,
            )
            .order_by("preread__case_id", "finding_type_id")
            .values_list("preread__case_id", "finding_type_id", "probability")
        )
    digest.section("ai", probabilities)
    digest.section_bytes("reads", [_reads_digest(current).encode("ascii")])
    return digest.hexdigest()


_SETTLE = timedelta(seconds=60)
_PREFIX_LIMIT = 64


@dataclass(frozen=True)
class _Prefix:
    """The reads digest after every finding of the study's reads with ID up to ``watermark``.

    The watermark is a read ID of the whole table (any study): every read up to it had
    settled when it was taken. ``newest_finding`` is the read finding table's newest ID when
    the prefix was checked last: a newer finding on a read up to the watermark makes it stale.
    """

    watermark: int
    newest_finding: int
    state: Any  # a hashlib sha256 object, copied before every use


_PREFIXES: dict[tuple[int, str], _Prefix] = {}
_PREFIX_LOCK = threading.Lock()


def _reads(study: Study, *, after: int, upto: int | None = None) -> Any:
    """The study's read findings of reads with ID in (``after``, ``upto``], in digest order.

    The read ID range comes first, so PostgreSQL walks only that part of the (read, finding
    type) index when the range is narrow, and joins the reads to the study from there.
    """
    query = ReadFinding.objects.filter(read_id__gt=after)
    if upto is not None:
        query = query.filter(read_id__lte=upto)
    return (
        query.filter(read__assignment__session__study_id=study.pk)
        .order_by("read_id", "finding_type_id")
        .values_list(
            "read_id",
            "read__assignment_id",
            "read__supersedes_id",
            "finding_type_id",  # its code is in the finding_types section
            "present",
            "confidence",
        )
    )


def _settled_read() -> int:
    """The newest read ID (any study) up to which every read has settled, 0 if none.

    Walks the primary key down from the newest read past those submitted in the last
    ``_SETTLE``: a handful of rows, however large the table.
    """
    before = timezone.now() - _SETTLE
    newest = (
        Read.objects.filter(submitted_at__lt=before).order_by("-id").values_list("id", flat=True)
    )
    return newest.first() or 0


def _reads_digest(study: Study) -> str:
    """sha256 of every read finding of the study, one text line each in (read, finding) order.

    Reads are append-only, so the digest of the settled ones is kept (:class:`_Prefix`) and
    only newer reads are streamed: an unchanged study costs a few index look-ups, new reads
    their own rows. The first call in a process streams every row (COPY on PostgreSQL).
    """
    # The study's creation time too: a flushed test database gives its IDs out again.
    key = (study.pk, study.created_at.isoformat())
    newest_finding = ReadFinding.objects.aggregate(top=Max("id"))["top"] or 0
    with _PREFIX_LOCK:
        prefix = _PREFIXES.get(key)
    if prefix is not None and newest_finding > prefix.newest_finding:
        lowest = ReadFinding.objects.filter(id__gt=prefix.newest_finding).aggregate(
            low=Min("read_id")
        )["low"]
        if lowest is not None and lowest <= prefix.watermark:
            prefix = None  # a finding added to a read the prefix may cover: start again
    if prefix is None:
        prefix = _Prefix(watermark=0, newest_finding=0, state=hashlib.sha256())
    settled = _settled_read()
    state = prefix.state.copy()
    if settled > prefix.watermark:
        with bulk_read_settings():  # the first call of a process streams every read
            for chunk in _stream(_reads(study, after=prefix.watermark, upto=settled)):
                state.update(chunk)
        prefix = _Prefix(watermark=settled, newest_finding=newest_finding, state=state.copy())
    else:
        prefix = _Prefix(prefix.watermark, newest_finding, prefix.state)
    with _PREFIX_LOCK:
        if len(_PREFIXES) >= _PREFIX_LIMIT and key not in _PREFIXES:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    for chunk in _stream(_reads(study, after=prefix.watermark)):
        state.update(chunk)
    return str(state.hexdigest())
