"""The platform's Django project and core apps (studies, reading, pre-reads, dashboard, audit)."""

from studyplatform.celery import app as celery_app

__all__ = ["celery_app"]
