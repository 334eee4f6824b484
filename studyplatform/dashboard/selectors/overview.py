"""The coordinator's view of a study: progress, washout calendar, pre-reads, balance, alerts.

Before the lock, coordinators see no outcome by arm (``results=False``): progress is counted per
reader and session, not per arm, without reading times; in a prospective study, where running
counts per site would hint at the next arm of a permuted block, the balance table shows only
whether each stratum is in balance.

Every figure is an aggregate computed in the database (a handful of GROUP BY queries), so the
page answers in the same time for 4 readers as for 50 readers x 5000 cases.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Func, IntegerField, Max, Q
from django.utils import timezone

from studyplatform.dashboard.selectors.protocol import ProtocolHistory, protocol_history
from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.prereads.selectors import PinnedModelError, pinned_model, preread_progress
from studyplatform.reading.models import Assignment, Read, Reader, ReadingSession
from studyplatform.reading.services.washout import SessionTimes, violations
from studyplatform.studies.models import Design, Study, Truth

IDLE_DAYS = 3
FAILED_LISTED = 20


@dataclass(frozen=True)
class ProgressRow:
    reader: str
    session: int
    arm: str
    total: int
    done: int
    median_seconds: float | None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class SessionRow:
    reader: str
    number: int
    available_from: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    waived: bool = False
    waiver_reason: str = ""
    waived_by: str = ""


@dataclass(frozen=True)
class BalanceRow:
    site: str
    stratum: str
    counts: dict[str, int]
    imbalance: int
    out_of_balance: bool


@dataclass(frozen=True)
class FailedPreRead:
    case: str
    model: str
    error: str
    attempts: int


@dataclass(frozen=True)
class Alert:
    kind: str  # idle_reader, failed_prereads, imbalance, pinned_model, washout violations
    message: str


@dataclass(frozen=True)
class StudyOverview:
    study: Study
    arms: list[str]
    n_readers: int
    n_cases: int
    total: int
    done: int
    progress: list[ProgressRow]
    sessions: list[SessionRow]
    prereads: dict[str, int]
    failed_prereads: list[FailedPreRead]
    balance: list[BalanceRow]
    alerts: list[Alert] = field(default_factory=list)
    results: bool = True  # outcomes by arm shown (statistician, or after the lock)
    balance_counts: bool = True  # per-arm counts in the balance table
    protocol: ProtocolHistory | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class _Session:
    pk: int
    reader: int
    number: int
    available_from: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    waived: bool
    waiver_reason: str
    waived_by: str | None


Key = tuple[int, int, int]  # reader id, session id, arm id


class _Seconds(Func):
    """Whole seconds between a read's start and submission (floored), in the database."""

    output_field = IntegerField()

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[str | int, ...]]:
        sql = "FLOOR(EXTRACT(EPOCH FROM (submitted_at - started_at)))"
        if connection.vendor == "sqlite":
            sql = "CAST((julianday(submitted_at) - julianday(started_at)) * 86400 AS INTEGER)"
        table = compiler.quote_name_unless_alias(Read._meta.db_table)
        sql = sql.replace("submitted_at", f"{table}.submitted_at").replace(
            "started_at", f"{table}.started_at"
        )
        return sql, ()


@dataclass
class _ReadStats:
    """Original reads per group, folded up to ``horizon`` (a per-process cache).

    Reads are append-only, so the aggregates of reads submitted before a time never change once
    every transaction of that time has committed (``_SETTLE`` later). Each request folds in the
    reads that settled since the last one and adds the few newer ones on top, instead of
    aggregating all reads of the study again: the dashboard stays fast for half a million reads.
    Reading times are kept as counts per whole second, which gives the median to the second.
    """

    horizon: datetime | None = None
    watermark: int = 0
    counts: dict[Key, int] = field(default_factory=dict)
    seconds: dict[Key, Counter[int]] = field(default_factory=dict)
    last: dict[Key, datetime] = field(default_factory=dict)

    def add(self, key: Key, second: int, n: int, last: datetime) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        self.seconds.setdefault(key, Counter())[second] += n
        self.last[key] = max(self.last.get(key, last), last)

    def copy(self) -> _ReadStats:
        return _ReadStats(
            self.horizon,
            self.watermark,
            dict(self.counts),
            {k: Counter(v) for k, v in self.seconds.items()},
            dict(self.last),
        )


_SETTLE = timedelta(seconds=60)
_ID_MARGIN = 10_000
_CACHE: dict[tuple[int, datetime], _ReadStats] = {}
_CACHE_LOCK = threading.Lock()


def _settled_groups(session_ids: list[int], *, top: int, before: datetime) -> Any:
    """Original reads with ID up to ``top`` submitted before ``before``, grouped."""
    return (
        Read.objects.filter(
            assignment__session_id__in=session_ids,
            supersedes__isnull=True,
            id__lte=top,
            submitted_at__lt=before,
        )
        .annotate(second=_Seconds())
        .values_list(
            "assignment__reader_id", "assignment__session_id", "assignment__arm_id", "second"
        )
        .annotate(n=Count("id"), last=Max("submitted_at"))
        .order_by()
    )


def _recent_reads(session_ids: list[int], *, watermark: int, horizon: datetime) -> Any:
    """Original reads not folded yet: newer than the watermark ID or submitted since ``horizon``.

    The ID bound lets PostgreSQL scan only the newest rows through the primary key's index:
    reads are inserted in ID order up to the few in flight, which ``_ID_MARGIN`` covers.
    """
    return (
        Read.objects.filter(
            Q(submitted_at__gte=horizon) | Q(id__gt=watermark),
            assignment__session_id__in=session_ids,
            supersedes__isnull=True,
            id__gt=watermark - _ID_MARGIN,
        )
        .annotate(second=_Seconds())
        .values_list(
            "id",
            "assignment__reader_id",
            "assignment__session_id",
            "assignment__arm_id",
            "second",
            "submitted_at",
        )
        .order_by()
    )


def _median(counts: Counter[int]) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    seen = 0
    for second in sorted(counts):
        seen += counts[second]
        if 2 * seen >= total:
            return second + 0.5
    return None


def _reads_by_group(
    study: Study, session_ids: list[int], now: datetime
) -> dict[Key, tuple[int, float | None, datetime]]:
    """Original reads per reader x session x arm: count, median seconds, last submission."""
    cache_key = (study.pk, study.created_at)
    with _CACHE_LOCK:
        cached = _CACHE.get(cache_key)
        stats = cached.copy() if cached is not None else _ReadStats()
    horizon = now - _SETTLE
    fresh = _ReadStats()
    if stats.horizon is None:  # first request of this process: everything settled, at once
        top = Read.objects.aggregate(top=Max("id"))["top"] or 0
        for reader, session, arm, second, n, last in _settled_groups(
            session_ids, top=top, before=horizon
        ):
            stats.add((reader, session, arm), int(second), n, last)
        stats.horizon, stats.watermark = horizon, top
    seen = stats.watermark
    for pk, reader, session, arm, second, submitted in _recent_reads(
        session_ids, watermark=stats.watermark, horizon=stats.horizon
    ):
        if pk <= stats.watermark and submitted < stats.horizon:
            continue  # folded already
        seen = max(seen, pk)
        settled = submitted < horizon
        (stats if settled else fresh).add((reader, session, arm), int(second), 1, submitted)
    stats.horizon = max(stats.horizon, horizon)
    stats.watermark = seen
    with _CACHE_LOCK:
        _CACHE[cache_key] = stats
    total = stats.copy()
    for key, counts in fresh.seconds.items():
        for second, n in counts.items():
            total.add(key, second, n, fresh.last[key])
    return {k: (n, _median(total.seconds[k]), total.last[k]) for k, n in total.counts.items()}


_ALLOCATION_CACHE: dict[tuple[str, str, int, int], list[tuple[Any, ...]]] = {}


def _assignment_counts(study: Study, name: str, query: Any) -> list[tuple[Any, ...]]:
    """Grouped assignment counts, cached until any assignment is added or removed.

    Once a study opens its allocation is frozen (assignments are only added, in the prospective
    design as cases arrive), so the counts change only with the assignment table's newest ID
    and size. A draft study's allocation may still be edited: it is never cached.
    """
    if not study.allocation_frozen:
        return list(query)
    state = Assignment.objects.aggregate(top=Max("id"))["top"] or 0
    # The study's creation time too: a flushed database (each transactional test) starts its
    # IDs again, so another study could repeat this one's IDs, newest assignment and count.
    key = (
        name,
        f"{study.pk}@{study.created_at.isoformat()}:{query.query}",
        state,
        _assignment_total(),
    )
    with _CACHE_LOCK:
        cached = _ALLOCATION_CACHE.get(key)
    if cached is None:
        cached = list(query)
        with _CACHE_LOCK:
            if len(_ALLOCATION_CACHE) > 64:
                _ALLOCATION_CACHE.clear()
            _ALLOCATION_CACHE[key] = cached
    return cached


def _assignment_total() -> int:
    """The assignment table's row count from the planner's statistics on PostgreSQL (instant).

    Only a change detector next to the newest ID, for deletions (re-randomizing a draft).
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return Assignment.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_ins - n_tup_del FROM pg_stat_user_tables WHERE relname = %s",
            [Assignment._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _progress(
    study: Study,
    sessions: dict[int, _Session],
    readers: dict[int, str],
    arms: dict[int, str],
    reads: dict[Key, tuple[int, float | None, datetime]],
) -> list[ProgressRow]:
    totals = _assignment_counts(
        study,
        "progress",
        Assignment.objects.filter(session_id__in=list(sessions))
        .values_list("reader_id", "session_id", "arm_id")
        .annotate(n=Count("id"))
        .order_by(),
    )
    rows = []
    for reader, session, arm, total in totals:
        n_done, med, _ = reads.get((reader, session, arm), (0, None, None))
        rows.append(
            ProgressRow(readers[reader], sessions[session].number, arms[arm], total, n_done, med)
        )
    return sorted(rows, key=lambda r: (r.reader, r.session, r.arm))


def _balance(
    study: Study, sessions: dict[int, _Session], arms: dict[int, str], n_readers: int
) -> list[BalanceRow]:
    """Assignments per site x truth stratum x arm in each reader's first session.

    A case is ``positive`` when any finding is present. The randomizer balances each reader's
    allocation within a stratum to one case, so a difference larger than the number of readers
    means something is wrong.
    """
    positive = set(
        Truth.objects.filter(case__study=study, case__training=False, present=True).values_list(
            "case_id", flat=True
        )
    )
    site_of = dict(study.cases.values_list("pk", "site__code"))
    first = [pk for pk, s in sessions.items() if s.number == 1]
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(arms.values(), 0)
    )
    for case, arm, n in _assignment_counts(
        study,
        "balance",
        Assignment.objects.filter(session_id__in=first)
        .values_list("case_id", "arm_id")
        .annotate(n=Count("id"))
        .order_by(),
    ):
        stratum = "positive" if case in positive else "negative"
        counts[(site_of[case], stratum)][arms[arm]] += n
    rows = []
    for (site, stratum), by_arm in sorted(counts.items()):
        values = list(by_arm.values())
        imbalance = max(values) - min(values) if values else 0
        rows.append(BalanceRow(site, stratum, by_arm, imbalance, imbalance > max(1, n_readers)))
    return rows


def _idle_alerts(
    study: Study,
    sessions: dict[int, _Session],
    readers: dict[int, str],
    progress: list[ProgressRow],
    reads: dict[Key, tuple[int, float | None, datetime]],
    now: datetime,
) -> list[Alert]:
    """Readers with unread cases in an open session and no read for ``IDLE_DAYS`` days."""
    last_read: dict[int, datetime] = {}
    for (reader, _, _), (_, _, submitted) in reads.items():
        last_read[reader] = max(last_read.get(reader, submitted), submitted)
    behind = {(r.reader, r.session) for r in progress if r.done < r.total}
    limit = now - timedelta(days=IDLE_DAYS)
    alerts = []
    for reader_id, code in sorted(readers.items(), key=lambda kv: kv[1]):
        open_since = [
            s.available_from or study.opened_at
            for s in sessions.values()
            if s.reader == reader_id
            and s.completed_at is None
            and (s.available_from is None or s.available_from <= now)
            and (code, s.number) in behind
        ]
        if not open_since:
            continue
        last: datetime | None = last_read.get(reader_id) or min(
            (t for t in open_since if t), default=None
        )
        if last is not None and last < limit:
            days = (now - last).days
            alerts.append(Alert("idle_reader", f"Reader {code} has not read for {days} days."))
    return alerts


def _blind_progress(rows: list[ProgressRow]) -> list[ProgressRow]:
    """Progress per reader and session, arms merged, without reading times."""
    merged: dict[tuple[str, int], tuple[int, int]] = {}
    for row in rows:
        total, done = merged.get((row.reader, row.session), (0, 0))
        merged[(row.reader, row.session)] = (total + row.total, done + row.done)
    return [
        ProgressRow(reader, session, "", total, done, None)
        for (reader, session), (total, done) in sorted(merged.items())
    ]


def study_overview(
    study: Study, *, now: datetime | None = None, results: bool = True
) -> StudyOverview:
    """Everything the dashboard shows for ``study``; ``results=False`` hides outcomes by arm."""
    now = now or timezone.now()
    arms = dict(study.arms.values_list("pk", "name"))
    readers = dict(
        Reader.objects.filter(sessions__study=study).values_list("pk", "code").distinct()
    )
    sessions = {
        row[0]: _Session(*row)
        # The training sessions are not the allocation's: their progress is the training's.
        for row in ReadingSession.objects.filter(study=study, training=False)
        .order_by("reader__code", "number")
        .values_list(
            "pk",
            "reader_id",
            "number",
            "available_from",
            "started_at",
            "completed_at",
            "washout_waived",
            "washout_waiver_reason",
            "washout_waived_by__username",
        )
    }
    reads = _reads_by_group(study, list(sessions), now)
    progress = _progress(study, sessions, readers, arms, reads)
    session_rows = [
        SessionRow(
            readers[s.reader],
            s.number,
            s.available_from,
            s.started_at,
            s.completed_at,
            s.waived,
            s.waiver_reason,
            s.waived_by or "",
        )
        for s in sessions.values()
    ]
    # The pinned model's pre-reads: the ones readers see (other models' are for comparison).
    try:
        model, pin_problem = pinned_model(study), ""
    except PinnedModelError as error:
        model, pin_problem = None, str(error)
    progress_ai = preread_progress(study, model) if model is not None else None
    prereads = {status: getattr(progress_ai, status, 0) for status in PreReadStatus.values}
    failed = [
        FailedPreRead(case, f"{name} {version}", error.strip().splitlines()[-1][:300], attempts)
        for case, name, version, error, attempts in PreRead.objects.filter(
            case__study=study, model=model, status=PreReadStatus.FAILED
        )
        .order_by("case__case_id")
        .values_list("case__case_id", "model__name", "model__version", "error", "attempts")[
            :FAILED_LISTED
        ]
    ]
    balance = _balance(study, sessions, arms, len(readers))
    alerts = _idle_alerts(study, sessions, readers, progress, reads, now)
    if pin_problem:
        alerts.append(Alert("pinned_model", pin_problem))
    if prereads[PreReadStatus.FAILED]:
        alerts.append(
            Alert("failed_prereads", f"{prereads[PreReadStatus.FAILED]} pre-reads failed.")
        )
    balance_counts = results or study.design != Design.PROSPECTIVE
    for row in balance:
        if row.out_of_balance:
            shown = ", ".join(f"{arm} {n}" for arm, n in row.counts.items())
            message = f"Arms out of balance at {row.site}, {row.stratum}"
            message += f": {shown}." if balance_counts else "."
            alerts.append(Alert("imbalance", message))
    times = [
        SessionTimes(r.reader, r.number, r.available_from, r.started_at, r.completed_at, r.waived)
        for r in session_rows
    ]
    alerts += [Alert(v.kind, v.message) for v in violations(times, study.washout_days)]
    if not results:
        progress = _blind_progress(progress)
    if not balance_counts:
        balance = [BalanceRow(r.site, r.stratum, {}, 0, r.out_of_balance) for r in balance]
    return StudyOverview(
        study=study,
        arms=list(arms.values()),
        n_readers=len(readers),
        n_cases=study.cases.filter(training=False).count(),
        total=sum(r.total for r in progress),
        done=sum(r.done for r in progress),
        progress=progress,
        sessions=session_rows,
        prereads=prereads,
        failed_prereads=failed,
        balance=balance,
        alerts=alerts,
        results=results,
        balance_counts=balance_counts,
        protocol=protocol_history(study),
    )


def as_dict(overview: StudyOverview) -> dict[str, Any]:
    """A JSON-able summary (for tests and scripts)."""
    return {
        "study": overview.study.slug,
        "done": overview.done,
        "total": overview.total,
        "prereads": overview.prereads,
        "alerts": [a.kind for a in overview.alerts],
    }
