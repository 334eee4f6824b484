"""Worker tasks of the dashboard."""

from __future__ import annotations

from studyplatform.celery import project_task


@project_task(name="dashboard.analyze_study", time_limit=3600)
def analyze_study(*, analysis_id: int) -> str:
    """Compute one cached analysis (idempotent: a finished one is left as it is)."""
    from studyplatform.dashboard.services import run_analysis

    return run_analysis(analysis_id=analysis_id).status
