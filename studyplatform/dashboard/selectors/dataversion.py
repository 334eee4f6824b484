"""The analysis cache key: a digest of every input value a study's analysis uses."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connection, transaction

from studyplatform.dashboard.selectors.longframe import ANALYSIS_SCHEMA
from studyplatform.prereads.models import PreReadFinding, PreReadStatus
from studyplatform.prereads.selectors import PinnedModelError, finding_thresholds, pinned_model
from studyplatform.reading.models import Reader, ReadFinding
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
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
            with raw.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
                yield from (bytes(chunk) for chunk in copy)
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
    (site, modality, manufacturer); truth values; the pinned model's pre-read probabilities;
    and every read's findings (read, assignment, the read a correction supersedes, finding,
    call, confidence: reads are append-only, so a read's ID stands for its times). Any change
    of any of these values changes the version, whatever the counts or ID sums.

    The reads are streamed (PostgreSQL's COPY, else a server-side cursor) and hashed chunk by
    chunk, so a million-row study takes memory for one chunk only.
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
        Reader.objects.filter(sessions__study=study)
        .values_list("pk", "code")
        .distinct()
        .order_by("pk"),
    )
    digest.section(
        "cases",
        Case.objects.filter(study=study)
        .order_by("pk")
        .values_list("pk", "case_id", "site__code", "modality", "manufacturer"),
    )
    digest.section(
        "truth",
        (
            (case, codes[finding], present)
            for case, finding, present in Truth.objects.filter(case__study=study)
            .order_by("case_id", "finding_type_id")
            .values_list("case_id", "finding_type_id", "present")
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
    reads = (
        ReadFinding.objects.filter(read__assignment__session__study_id=study.pk)
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
    digest.section_bytes("reads", _stream(reads))
    return digest.hexdigest()
