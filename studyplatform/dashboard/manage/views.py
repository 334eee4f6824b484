"""The coordinator's pages under ``/dashboard/STUDY/manage/``: readers, sites, site tokens.

Only the study's coordinators (and superusers) get in (:func:`access.manage_study_for`). Views
parse the form, call one service and render; a refusal (:class:`ManageRefusedError`, or a
locked study) renders the page again with the reason, status 409; an invalid form, status 400.
The password-set link and the site token are shown once, in the answer to the POST that made
them, never stored in a page that can be reloaded (``never_cache``).
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyplatform.dashboard import access
from studyplatform.dashboard.manage import forms, selectors, services
from studyplatform.dashboard.manage.services import ManageRefusedError
from studyplatform.reading.models import AllocationRecord, Enrolment
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Design, SiteToken, Study

_REFUSED = (ManageRefusedError, FrozenStudyError)


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)


@login_required
@require_GET
def home(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    context = {
        "study": study,
        "amend_url": reverse("admin:studies_study_amend_protocol", args=[study.pk]),
    }
    return render(request, "dashboard/manage/home.html", context)


def _readers_page(
    request: HttpRequest, study: Study, status: int = 200, **forms_given: Any
) -> HttpResponse:
    enrolments = study.enrolments.select_related("reader__user").order_by("reader__code")
    context = {
        "study": study,
        "enrolments": enrolments,
        "split_plot": study.design == Design.SPLIT_PLOT,
        "randomized": AllocationRecord.objects.filter(study=study).exists(),
        "group_choices": range(1, study.split_plot_groups + 1),
        "create_form": forms_given.get("create_form") or forms.ReaderCreateForm(),
        "invite_form": forms_given.get("invite_form") or forms.ReaderInviteForm(),
        "enrol_form": forms_given.get("enrol_form")
        or forms.EnrolForm(initial={"code": request.GET.get("code", "")}),
        "error": forms_given.get("error", ""),
    }
    return render(request, "dashboard/manage/readers.html", context, status=status)


@login_required
@require_GET
def readers(request: HttpRequest, slug: str) -> HttpResponse:
    return _readers_page(request, access.manage_study_for(request.user, slug))


@login_required
@require_POST
@never_cache
def reader_create(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    form = forms.ReaderCreateForm(request.POST)
    if not form.is_valid():
        return _readers_page(request, study, 400, create_form=form)
    data = form.cleaned_data
    try:
        reader = services.create_reader(
            study=study,
            actor=_actor(request),
            username=data["username"],
            email=data["email"],
            code=data["code"],
            specialty=data["specialty"],
            years_experience=data["years_experience"],
            role=data["role"],
        )
    except _REFUSED as error:
        return _readers_page(request, study, 409, create_form=form, error=str(error))
    link = request.build_absolute_uri(services.password_set_path(reader.user))
    services.send_password_set_link(study=study, user=reader.user, url=link)
    days = settings.PASSWORD_RESET_TIMEOUT // 86400
    context = {"study": study, "reader": reader, "link": link, "days": days}
    return render(request, "dashboard/manage/reader_created.html", context, status=201)


@login_required
@require_POST
def reader_invite(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    form = forms.ReaderInviteForm(request.POST)
    if not form.is_valid():
        return _readers_page(request, study, 400, invite_form=form)
    data = form.cleaned_data
    try:
        enrolment = services.invite_reader(
            study=study,
            actor=_actor(request),
            email=data["email"],
            code=data["code"],
            specialty=data["specialty"],
            years_experience=data["years_experience"],
            role=data["role"],
            login_url=request.build_absolute_uri(reverse("login")),
        )
    except _REFUSED as error:
        return _readers_page(request, study, 409, invite_form=form, error=str(error))
    messages.success(request, f"Reader {enrolment.reader.code} enrolled and e-mailed.")
    return redirect("dashboard:manage_readers", slug=study.slug)


@login_required
@require_POST
def enrol(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    form = forms.EnrolForm(request.POST)
    if not form.is_valid():
        return _readers_page(request, study, 400, enrol_form=form)
    try:
        services.enrol_reader(study=study, actor=_actor(request), reader=form.cleaned_data["code"])
    except _REFUSED as error:
        return _readers_page(request, study, 409, enrol_form=form, error=str(error))
    messages.success(request, f"Reader {form.cleaned_data['code'].code} enrolled.")
    return redirect("dashboard:manage_readers", slug=study.slug)


@login_required
@require_POST
def unenrol(request: HttpRequest, slug: str, enrolment_id: int) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    enrolment = get_object_or_404(
        Enrolment.objects.select_related("reader"), pk=enrolment_id, study=study
    )
    try:
        services.unenrol_reader(study=study, actor=_actor(request), enrolment=enrolment)
    except _REFUSED as error:
        return _readers_page(request, study, 409, error=str(error))
    messages.success(request, f"Reader {enrolment.reader.code} un-enrolled.")
    return redirect("dashboard:manage_readers", slug=study.slug)


@login_required
@require_POST
def groups(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    try:
        wanted = forms.parse_groups(request.POST, study)
    except ValueError as error:
        return _readers_page(request, study, 400, error=str(error))
    try:
        changed = services.set_groups(study=study, actor=_actor(request), groups=wanted)
    except _REFUSED as error:
        return _readers_page(request, study, 409, error=str(error))
    messages.success(request, f"Groups saved ({len(changed)} reader(s) changed).")
    return redirect("dashboard:manage_readers", slug=study.slug)


def _sites_page(
    request: HttpRequest,
    study: Study,
    status: int = 200,
    form: forms.SiteCreateForm | None = None,
    error: str = "",
) -> HttpResponse:
    context = {
        "study": study,
        "sites": selectors.study_sites(study),
        "form": form or forms.SiteCreateForm(),
        "error": error,
    }
    return render(request, "dashboard/manage/sites.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def sites(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    if request.method != "POST":
        return _sites_page(request, study)
    form = forms.SiteCreateForm(request.POST)
    if not form.is_valid():
        return _sites_page(request, study, 400, form)
    try:
        site = services.create_site(
            study=study,
            actor=_actor(request),
            code=form.cleaned_data["code"],
            name=form.cleaned_data["name"],
        )
    except _REFUSED as error:
        return _sites_page(request, study, 409, form, str(error))
    messages.success(request, f"Site {site.code} created.")
    return redirect("dashboard:manage_sites", slug=study.slug)


@login_required
@require_POST
def site_rename(request: HttpRequest, slug: str, site_id: int) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    site = get_object_or_404(selectors.study_sites(study), pk=site_id)
    form = forms.SiteRenameForm(request.POST)
    if not form.is_valid():
        return _sites_page(request, study, 400, error=f"site {site.code}: a name is required")
    try:
        services.rename_site(
            study=study, actor=_actor(request), site=site, name=form.cleaned_data["name"]
        )
    except _REFUSED as error:
        return _sites_page(request, study, 409, error=str(error))
    messages.success(request, f"Site {site.code} renamed.")
    return redirect("dashboard:manage_sites", slug=study.slug)


def _tokens_page(
    request: HttpRequest,
    study: Study,
    status: int = 200,
    form: forms.TokenIssueForm | None = None,
    error: str = "",
    issued: str = "",
) -> HttpResponse:
    context = {
        "study": study,
        "rows": selectors.study_tokens(study),
        "form": form or forms.TokenIssueForm(sites=selectors.study_sites(study)),
        "error": error,
        "issued": issued,
    }
    return render(request, "dashboard/manage/tokens.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@never_cache
def tokens(request: HttpRequest, slug: str) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    if request.method != "POST":
        return _tokens_page(request, study)
    form = forms.TokenIssueForm(request.POST, sites=selectors.study_sites(study))
    if not form.is_valid():
        return _tokens_page(request, study, 400, form)
    try:
        token = services.issue_token(
            study=study,
            actor=_actor(request),
            site=form.cleaned_data["site"],
            name=form.cleaned_data["name"],
        )
    except _REFUSED as error:
        return _tokens_page(request, study, 409, form, str(error))
    return _tokens_page(request, study, 201, issued=token)


@login_required
@require_POST
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    study = access.manage_study_for(request.user, slug)
    token = get_object_or_404(SiteToken, pk=token_id, study=study)
    try:
        services.revoke_token(study=study, actor=_actor(request), token=token)
    except _REFUSED as error:
        return _tokens_page(request, study, 409, error=str(error))
    messages.success(request, f"Token {token.name!r} revoked.")
    return redirect("dashboard:manage_tokens", slug=study.slug)
