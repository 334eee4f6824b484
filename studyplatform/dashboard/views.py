"""Coordinator and statistician pages: study list, dashboard, analysis report, exports.

Views parse the request, check access (:mod:`studyplatform.dashboard.access`), call one
selector or service and render. Readers and staff of other studies get 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyplatform.accounts.middleware import allow_inline_styles
from studyplatform.dashboard import access, jobs, planning, report, selectors, services
from studyplatform.dashboard.exports import ExportError, build_export
from studyplatform.dashboard.exports.formats import CONTENT_TYPES
from studyplatform.dashboard.forms import ExportForm, PlanningForm
from studyplatform.dashboard.models import AnalysisResult, AnalysisStatus, ExportJob, ExportStatus

_TEXT = "text/plain; charset=utf-8"


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and compose health checks: the database answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


@login_required
@require_GET
def study_list(request: HttpRequest) -> HttpResponse:
    studies = access.staff_studies(request.user)
    if not studies and not request.user.has_perm(access.VIEW):
        raise PermissionDenied("the dashboard is for coordinators and statisticians")
    return render(request, "dashboard/study_list.html", {"studies": studies})


@login_required
@require_GET
def study_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.study_for(request.user, slug)
    results = access.may_see_results(request.user, study)
    may_export = access.may(request.user, study, access.EXPORT)
    # The jobs of the formats this user may export now (the DICOM export carries arms).
    job_formats = tuple(
        fmt for fmt in jobs.JOB_FORMATS if results or fmt not in access.RESULT_EXPORTS
    )
    context = {
        "overview": selectors.study_overview(study, results=results),
        "may_see_results": results,
        "may_export": may_export,
        "export_jobs": (
            jobs.recent_jobs(study=study, formats=job_formats) if may_export and job_formats else []
        ),
        "may_manage": access.may_manage(request.user, study),
        "findings": list(study.finding_types.values_list("code", flat=True)),
    }
    return render(request, "dashboard/dashboard.html", context)


def _payload(row: AnalysisResult) -> dict[str, Any]:
    assert row.result is not None
    return {
        "study": row.study.slug,
        "data_version": row.data_version,
        "computed_at": row.finished_at.isoformat() if row.finished_at else None,
        **row.result,
    }


@login_required
@require_GET
@allow_inline_styles  # plotly.js inserts <style> elements
def analysis_report(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.results_study_for(request.user, slug, what="analysis report")
    row = services.analysis_for(study=study)
    body = ""
    if row.status == AnalysisStatus.DONE:
        body = report.render_report(study=study, payload=_payload(row), standalone=False)
    context = {
        "study": study,
        "row": row,
        "body": body,
        "may_export": access.may(request.user, study, access.EXPORT),
        "may_manage": access.may_manage(request.user, study),
        "plotly_version": report.plotly_version(),
    }
    return render(request, "dashboard/report.html", context)


@login_required
@require_GET
def analysis_status(request: HttpRequest, slug: str) -> JsonResponse:
    study = access.results_study_for(request.user, slug, what="", shows_results=False)
    row = AnalysisResult.objects.filter(study=study).order_by("-created_at").first()
    if row is None:
        return JsonResponse({"status": "none", "progress": 0, "stage": ""})
    return JsonResponse(
        {"status": row.status, "progress": row.progress, "stage": row.stage, "error": row.error}
    )


@login_required
@require_POST
def analysis_retry(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.results_study_for(request.user, slug, what="", shows_results=False)
    services.retry_analysis(study=study)
    return redirect("dashboard:report", slug=study.slug)


@login_required
@require_POST
def export(request: HttpRequest, slug: str) -> HttpResponseBase:
    """One export, asked for by a form (POST, CSRF-protected): ``format`` and ``finding``
    (``object`` and ``file`` for the audit trail).

    The DICOM export (``sr``) is built by a worker instead: the request queues a job (or finds
    the one in flight) and returns to the dashboard, which lists it (:func:`export_download`).

    Nothing is recorded until the request is valid and the export is built: a bad format or
    finding type is a 400 that leaves the audit trail alone.
    """
    study = access.export_study_for(request.user, slug, request.POST.get("format", ""))
    form = ExportForm(request.POST, study=study)
    if not form.is_valid():
        return HttpResponseBadRequest(form.error_text(), content_type=_TEXT)
    fmt: str = form.cleaned_data["format"]
    finding: str | None = form.cleaned_data["finding"]
    if fmt in jobs.JOB_FORMATS:  # too large for a request: a worker builds it, listed below
        jobs.request_export(study=study, fmt=fmt, user=request.user)
        return redirect(reverse("dashboard:study", args=[study.slug]) + "#export-jobs")
    analysis = None
    if fmt in ("json", "html", "checklist"):
        row = services.analysis_for(study=study)
        if row.status == AnalysisStatus.DONE:
            analysis = _payload(row)
        elif fmt != "checklist":  # the checklist says that the analysis has not run
            message = row.error or f"the analysis is {row.status} ({row.progress}%); try again soon"
            return HttpResponse(message, status=409, content_type=_TEXT)
    audit_object: str = form.cleaned_data["object"] or ""
    try:
        result = build_export(
            study,
            fmt,
            finding=finding,
            analysis=analysis,
            audit_object=audit_object,
            audit_html=form.cleaned_data["file"] == "html",
        )
    except ExportError as error:
        return HttpResponseBadRequest(str(error), content_type=_TEXT)
    details: dict[str, Any] = {"finding": finding, "via": "web"}
    if fmt == "audit":
        details["object"] = audit_object
    services.record_export(
        user=request.user,
        study=study,
        fmt=fmt,
        details=details,
        interim_what=f"export {fmt}" if fmt in access.RESULT_EXPORTS else "",
    )
    response = StreamingHttpResponse(result.chunks, content_type=result.content_type)
    response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
    return response


@login_required
@require_GET
def export_jobs_status(request: HttpRequest, slug: str) -> JsonResponse:
    """The study's recent export jobs as JSON (``{"jobs": [{id, status, progress, error}]}``),
    which the dashboard polls while one is queued or running, for whoever may export their
    formats now (the DICOM export carries arms: the statistician until the lock)."""
    study = access.study_for(request.user, slug, access.EXPORT)
    formats = tuple(
        fmt
        for fmt in jobs.JOB_FORMATS
        if fmt not in access.RESULT_EXPORTS or access.may_see_results(request.user, study)
    )
    if not formats:
        raise PermissionDenied(access.RESULTS_REFUSED.format(slug=slug))
    rows = jobs.recent_jobs(study=study, formats=formats, stale=False)  # polled: no digest
    return JsonResponse(
        {
            "jobs": [
                {"id": r.job.pk, "status": r.status, "progress": r.job.progress, "error": r.error}
                for r in rows
            ]
        }
    )


@login_required
@require_GET
def export_download(request: HttpRequest, slug: str, job_id: int) -> HttpResponseBase:
    """A finished export job's file, for whoever the export form would give it to now.

    The same access as the export form (roles, and results by arm for the statistician until
    the lock); another study's job is a 404. The download is the export: it is recorded as the
    form records one (with the interim look before the lock).
    """
    study = access.study_for(request.user, slug, access.EXPORT)
    job = get_object_or_404(ExportJob, pk=job_id, study=study)
    study = access.export_study_for(request.user, slug, job.format)
    path = jobs.job_file(job)
    if path is None:
        if job.status == ExportStatus.DONE:
            why = job.error or "removed"
            gone = f"the export's file is no longer stored ({why}); ask for a new export"
            return HttpResponse(gone, status=410, content_type=_TEXT)
        [row] = jobs.job_rows([job], stale=False)
        message = row.error or f"the export is {row.status} ({job.progress}%); try again soon"
        return HttpResponse(message, status=409, content_type=_TEXT)
    services.record_export(
        user=request.user,
        study=study,
        fmt=job.format,
        details={"finding": None, "via": "web", "job": job.pk, "sha256": job.sha256},
        interim_what=f"export {job.format}" if job.format in access.RESULT_EXPORTS else "",
    )
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=jobs.filename(job),
        content_type=CONTENT_TYPES[job.format],
    )


@login_required
@require_http_methods(["GET", "POST"])
@allow_inline_styles  # plotly.js inserts <style> elements
def power_planning(request: HttpRequest, slug: str) -> HttpResponse:
    """A J x K power grid from a pilot: built in, uploaded (POST, multipart) or the study's own
    interim data. The same people as the report; a look at the interim data before the lock is
    recorded, as the report's. A pilot or plan that cannot be used is a 400 page that says why.
    """
    study = access.results_study_for(request.user, slug, what="", shows_results=False)
    if request.method == "POST":
        form = PlanningForm(request.POST, request.FILES, study=study)
    else:
        form = PlanningForm({"source": "builtin", **_initial(PlanningForm)}, study=study)
    plan, error = None, ""
    if form.is_valid():
        try:
            plan = planning.plan_power(study=study, data=form.cleaned_data)
        except ValueError as problem:
            error = str(problem)
        else:
            if form.cleaned_data["source"] == "study":
                services.record_interim_view(
                    user=request.user, study=study, what="power planning from interim data"
                )
    context = {
        "study": study,
        "form": form,
        "plan": plan,
        "error": error,
        "figure": plan.grid.figure() if plan else None,
        "plotly_version": report.plotly_version(),
    }
    status = 400 if error or not form.is_valid() else 200
    return render(request, "dashboard/planning.html", context, status=status)


def _initial(form: type[PlanningForm]) -> dict[str, Any]:
    return {
        name: field.initial for name, field in form.base_fields.items() if field.initial is not None
    }


@login_required
@require_GET
@cache_control(private=True, max_age=30 * 24 * 3600, immutable=True)
def plotly_js(request: HttpRequest, version: str) -> HttpResponse:
    """plotly.js from the installed plotly package (the URL names its version, for caching)."""
    return HttpResponse(report.plotly_js(), content_type="text/javascript; charset=utf-8")
