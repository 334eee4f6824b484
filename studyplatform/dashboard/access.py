"""Who may see a study's dashboard, analysis and exports.

Coordinators and statisticians of that study (StudyMembership) whose role grants the permission
(``studies.view_analysis`` for pages, ``studies.export_study`` for exports). Readers hold neither
permission, and staff of another study hold no membership here, so both are refused. Superusers
see everything, as in the admin.

Results by arm (the analysis report, its status, every export that carries arms) are for the
study's statisticians (and superusers) until the study is locked: coordinators run the trial and
see its progress, balance and data quality, never its outcomes by arm, so that nothing they see
can steer it. After the lock they see everything. Every look at a result before the lock is
recorded in the audit trail (``analysis.interim_view``), whichever request method asked.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from studyplatform.dashboard.exports import FORMATS
from studyplatform.dashboard.services import record_interim_view
from studyplatform.studies.models import MemberRole, Study, StudyState

VIEW = "studies.view_analysis"
EXPORT = "studies.export_study"

RESULT_EXPORTS = frozenset(
    {
        "long",
        "marks",
        "measurements",
        "telemetry",
        "mrmcaov",
        "rjafroc",
        "imrmc",
        "json",
        "html",
        "checklist",
        "sr",
    }
)
"""Export formats that carry arms (and so results by arm).

The checklist is one: its failure analysis and estimates give the readers' calls by arm; so is
the DICOM export (``sr``), whose read reports record each read's arm. The
audit trail is not: it shows what the admin shows its coordinators, with seeds and arms concealed
until the lock (:mod:`studyplatform.dashboard.exports.audit`)."""

RESULTS_REFUSED = (
    "results by arm of study {slug} are for its statistician until the study is locked: "
    "coordinators see progress, balance and data quality while it runs, never outcomes by arm"
)


def may(user: User | AnonymousUser, study: Study, permission: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.has_perm(permission)) and study.memberships.filter(user_id=user.pk).exists()


def may_see_results(user: User | AnonymousUser, study: Study) -> bool:
    """Results by arm: after the lock, everyone with the dashboard; before, statisticians."""
    if not may(user, study, VIEW):
        return False
    if study.state == StudyState.LOCKED or getattr(user, "is_superuser", False):
        return True
    return study.memberships.filter(
        user_id=int(user.pk or 0), role=MemberRole.STATISTICIAN
    ).exists()


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


def results_study_for(
    user: User | AnonymousUser,
    slug: str,
    *,
    what: str,
    permission: str = VIEW,
    shows_results: bool = True,
) -> Study:
    """The study if ``user`` may see its results by arm now; 404 / 403 otherwise.

    ``what`` names the result in the audit trail; a request that shows no result itself (the
    report's status, a retry) passes ``shows_results=False`` and is not recorded.
    """
    study = study_for(user, slug, permission)
    if not may_see_results(user, study):
        raise PermissionDenied(RESULTS_REFUSED.format(slug=slug))
    if shows_results:
        record_interim_view(user=user, study=study, what=what)
    return study


def export_study_for(user: User | AnonymousUser, slug: str, fmt: str) -> Study:
    """The study if ``user`` may export it in ``fmt`` now (formats with arms are results).

    An unknown format counts as one with arms, so that who may not see results is refused
    whatever the request says. Records nothing: the export view validates the request and
    builds the export first, then records it, with the interim look before the lock
    (:func:`services.record_export`).
    """
    study = study_for(user, slug, EXPORT)
    with_arms = fmt in RESULT_EXPORTS or fmt not in FORMATS
    if with_arms and not may_see_results(user, study):
        raise PermissionDenied(RESULTS_REFUSED.format(slug=slug))
    return study


def may_manage(user: User | AnonymousUser, study: Study) -> bool:
    """Whether ``user`` runs ``study``: one of its coordinators, or a superuser."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return study.has_member(int(user.pk or 0), MemberRole.COORDINATOR)


def manage_study_for(user: User | AnonymousUser, slug: str) -> Study:
    """The study named ``slug`` if ``user`` is one of its coordinators; else 404 / 403.

    The management pages (readers, sites, site tokens) are the coordinators' alone: statisticians
    and readers are refused, and so are coordinators of other studies.
    """
    study = get_object_or_404(Study, slug=slug)
    if not may_manage(user, study):
        raise PermissionDenied(f"only the coordinators of study {slug} manage it")
    return study
