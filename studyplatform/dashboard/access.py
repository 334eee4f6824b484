"""Who may see a study's dashboard, analysis and exports.

Coordinators and statisticians of that study (StudyMembership) whose role grants the permission
(``studies.view_analysis`` for pages, ``studies.export_study`` for exports). Readers hold neither
permission, and staff of another study hold no membership here, so both are refused. Superusers
see everything, as in the admin.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from studyplatform.studies.models import Study

VIEW = "studies.view_analysis"
EXPORT = "studies.export_study"


def may(user: User | AnonymousUser, study: Study, permission: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.has_perm(permission)) and study.memberships.filter(user_id=user.pk).exists()


def staff_studies(user: User | AnonymousUser) -> list[Study]:
    """The studies whose dashboard ``user`` may open."""
    if not user.is_authenticated:
        return []
    if getattr(user, "is_superuser", False):
        return list(Study.objects.order_by("slug"))
    if not user.has_perm(VIEW):
        return []
    return list(Study.objects.filter(memberships__user_id=user.pk).distinct().order_by("slug"))


def study_for(user: User | AnonymousUser, slug: str, permission: str = VIEW) -> Study:
    """The study named ``slug`` if ``user`` may use it with ``permission``; else 404 / 403."""
    study = get_object_or_404(Study, slug=slug)
    if not may(user, study, permission):
        raise PermissionDenied(f"not a coordinator or statistician of study {slug}")
    return study
