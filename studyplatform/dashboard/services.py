"""Use cases of the dashboard: get (or start) a study's analysis, record exports."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis.study import analyze_study
from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.dashboard.models import AnalysisResult, AnalysisStatus
from studyplatform.dashboard.selectors import (
    data_version,
    long_reads_frame,
    protocol_in_force,
)
from studyplatform.dashboard.selectors.marks import study_marks
from studyplatform.dashboard.selectors.readers import complete_readers
from studyplatform.reading.models import ReadFinding
from studyplatform.studies.models import Study, StudyState

log = logging.getLogger(__name__)

# Below this many long rows the analysis runs in the request (a few seconds); above, a worker.
INLINE_ROWS = 20_000


def _set_progress(analysis_id: int, percent: int, stage: str) -> None:
    AnalysisResult.objects.filter(pk=analysis_id).update(progress=percent, stage=stage[:100])


def run_analysis(*, analysis_id: int, complete: list[str] | None = None) -> AnalysisResult:
    """Compute the analysis of one AnalysisResult row; idempotent (a finished one is kept).

    ``complete``: the study's complete readers when the caller has just read them for the
    row's key (:func:`analysis_for`); ``None`` reads them again (a worker).
    """
    row = AnalysisResult.objects.select_related("study").get(pk=analysis_id)
    if row.status == AnalysisStatus.DONE:
        return row
    AnalysisResult.objects.filter(pk=row.pk).update(
        status=AnalysisStatus.RUNNING, progress=5, stage="loading reads", error=""
    )
    study = row.study
    protocol = protocol_in_force(study)
    AnalysisResult.objects.filter(pk=row.pk).update(protocol_version=protocol.version)
    try:
        long = long_reads_frame(study)
        result = analyze_study(
            long,
            significant=protocol.significant() or None,
            thresholds=protocol.thresholds(study),
            protocol={
                "version": protocol.version,
                "sha256": protocol.sha256,
                "finding_types": protocol.finding_types,
                "primary_endpoint": protocol.primary_endpoint,
                "ni_margin": protocol.ni_margin,
            },
            complete_readers=complete_readers(study) if complete is None else complete,
            progress=lambda percent, stage: _set_progress(row.pk, percent, stage),
            marks=study_marks(study, scored_only=True),
        )
    except ValueError as error:  # the data cannot be analysed (yet): say why
        AnalysisResult.objects.filter(pk=row.pk).update(
            status=AnalysisStatus.FAILED, error=str(error), finished_at=timezone.now()
        )
    except Exception as error:  # a bug or a numerical failure: never leave it "running"
        log.exception("analysis %s of study %s failed", row.pk, study.slug)
        AnalysisResult.objects.filter(pk=row.pk).update(
            status=AnalysisStatus.FAILED,
            error=f"internal error ({type(error).__name__}): {error}",
            finished_at=timezone.now(),
        )
    else:
        with transaction.atomic():
            AnalysisResult.objects.filter(pk=row.pk).update(
                status=AnalysisStatus.DONE,
                progress=100,
                stage="done",
                result=result,
                finished_at=timezone.now(),
            )
            # Older versions are stale: keep only this one (and any still in flight).
            AnalysisResult.objects.filter(
                study=study, status__in=[AnalysisStatus.DONE, AnalysisStatus.FAILED]
            ).exclude(pk=row.pk).delete()
    row.refresh_from_db()
    return row


def _long_rows(study: Study, limit: int) -> int:
    """The study's read findings, counted up to ``limit + 1`` (enough to compare with it)."""
    rows = ReadFinding.objects.filter(
        read__assignment__session__study=study, read__assignment__session__training=False
    ).order_by()
    return rows[: limit + 1].count()


def analysis_version(study: Study) -> str:
    """The cache key of the study's analysis: its data, the protocol version it follows, and
    the readers who have finished.

    An amendment (a type now clinically significant, a new threshold) changes the analysis of
    the same reads, so the protocol's digest is part of the key; so does a new assignment that
    leaves a reader unfinished (the complete-case analysis then leaves them out).
    """
    return _version(study)[0]


def _version(study: Study) -> tuple[str, list[str]]:
    """:func:`analysis_version` and the complete readers it keys."""
    complete = complete_readers(study)
    key = (
        f"{data_version(study)}|protocol:{protocol_in_force(study).sha256}"
        f"|complete:{','.join(complete)}"
    )
    return hashlib.sha256(key.encode("utf-8")).hexdigest(), complete


def analysis_for(
    *, study: Study, inline_rows: int | None = None, inline: bool = False
) -> AnalysisResult:
    """The analysis of the study's current data: cached, computed now (small), or queued.

    A small study (up to ``inline_rows`` long rows, default ``INLINE_ROWS``) is analysed in
    the call, and so is any study with ``inline`` (the management commands); a large one gets a
    pending row and a worker task (the page polls its progress). Two concurrent calls create
    one row and one task.
    """
    from studyplatform.celery import enqueue
    from studyplatform.dashboard.tasks import analyze_study

    version, complete = _version(study)
    existing = AnalysisResult.objects.filter(study=study, data_version=version).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            row = AnalysisResult.objects.create(study=study, data_version=version)
    except IntegrityError:  # a concurrent request created it first
        return AnalysisResult.objects.get(study=study, data_version=version)
    limit = INLINE_ROWS if inline_rows is None else inline_rows
    if inline or _long_rows(study, limit) <= limit:
        return run_analysis(analysis_id=row.pk, complete=complete)
    enqueue(analyze_study, analysis_id=row.pk)
    return row


def retry_analysis(*, study: Study) -> AnalysisResult:
    """Forget a failed analysis of the current data and start again."""
    AnalysisResult.objects.filter(
        study=study, data_version=analysis_version(study), status=AnalysisStatus.FAILED
    ).delete()
    return analysis_for(study=study)


def record_export(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    study: Study,
    fmt: str,
    details: dict[str, Any] | None = None,
    interim_what: str = "",
) -> None:
    """Put an export in the audit trail (who took which study's data, in which format).

    ``interim_what`` names an export that carries results by arm: before the study's lock it is
    also recorded as an interim look, in the same transaction.
    """
    with transaction.atomic():
        if interim_what:
            record_interim_view(user=user, study=study, what=interim_what)
        record(
            actor=user,
            action="study.export",
            obj=study,
            study=study,
            after={"format": fmt, **(details or {})},
        )


def record_interim_view(
    *, user: AbstractBaseUser | AnonymousUser | None, study: Study, what: str
) -> None:
    """Put a look at results by arm before the study's lock in the audit trail (who, what)."""
    if study.state == StudyState.LOCKED:
        return
    record(
        actor=user,
        action=Action.INTERIM_VIEW,
        obj=study,
        study=study,
        after={"what": what, "state": study.state},
        reason="interim result viewed before lock",
    )
