"""Worker tasks of the dashboard."""

from __future__ import annotations

from studyplatform.celery import project_task
from studyplatform.dashboard.jobs import EXPORT_TIME_LIMIT, expire_exports, run_export


@project_task(name="dashboard.analyze_study", time_limit=3600)
def analyze_study(*, analysis_id: int) -> str:
    """Compute one cached analysis (idempotent: a finished one is left as it is)."""
    from studyplatform.dashboard.services import run_analysis

    return run_analysis(analysis_id=analysis_id).status


@project_task(name="dashboard.build_export", time_limit=EXPORT_TIME_LIMIT)
def build_export_job(*, job_id: int) -> str:
    """Build one export job's file (idempotent: a done or failed job is left as it is)."""
    return run_export(job_id=job_id).status


@project_task(name="dashboard.expire_exports", time_limit=600)
def expire_export_files() -> int:
    """Remove export files past their retention and partial files of dead workers (hourly)."""
    return expire_exports()
