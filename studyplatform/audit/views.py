"""The signature pages: re-enter the password to lock a study, finalize its ground truth, or
amend its protocol.

Reached from the study's admin page (the admin wires the URLs); only the study's coordinators
with the matching permission, and superusers, may open it.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from studyplatform.accounts import throttle
from studyplatform.audit.forms import AmendProtocolForm
from studyplatform.audit.models import Signature
from studyplatform.audit.selectors import signature_for, study_data_digest, truth_digest
from studyplatform.audit.signatures import (
    AMEND_MEANING,
    FINALIZE_TRUTH_MEANING,
    LOCK_MEANING,
    SignatureRefusedError,
    SignatureStateError,
    amend_protocol,
    finalize_truth,
    lock_study,
    may_sign,
)
from studyplatform.studies.models import FindingType, Study
from studyplatform.studies.services.amendment import NOT_AMENDABLE, InvalidAmendmentError
from studyplatform.studies.services.protocol import protocol_content

_MEANING = {
    Signature.Kind.STUDY_LOCK: LOCK_MEANING,
    Signature.Kind.TRUTH_FINALIZE: FINALIZE_TRUTH_MEANING,
}


class SignForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autofocus": True})
    )


def sign(request: HttpRequest, study_id: int, kind: str, admin_site: AdminSite) -> HttpResponse:
    study = get_object_or_404(Study, pk=study_id)
    kind = Signature.Kind(kind)
    if not may_sign(request.user, study, kind):
        raise PermissionDenied("Only the study's coordinators may sign for it.")
    meaning = _MEANING[kind]
    form = SignForm(request.POST or None)
    status = 200
    username, ip = request.user.get_username(), throttle.client_ip(request)
    if request.method == "POST" and form.is_valid():
        wait = throttle.claim_attempt(username, ip)  # counted before the password is checked
        if wait:
            form.add_error(None, f"Too many wrong passwords: try again in {(wait + 59) // 60} min.")
            status = 429
        else:
            service = lock_study if kind == Signature.Kind.STUDY_LOCK else finalize_truth
            try:
                service(
                    study=study,
                    user=request.user,  # type: ignore[arg-type]
                    password=form.cleaned_data["password"],
                    meaning=meaning,
                )
            except SignatureRefusedError as error:
                form.add_error("password", str(error))
                status = 403
            except SignatureStateError as error:
                form.add_error(None, error.message)
                status = 409
            else:
                throttle.clear_failures(username, ip)
                messages.success(request, f"{kind.label}: signed. {meaning}")
                return HttpResponseRedirect(reverse("admin:studies_study_change", args=[study.pk]))
    context = {
        **admin_site.each_context(request),
        "title": f"{kind.label}: {study.slug}",
        "study": study,
        "kind": kind,
        "meaning": meaning,
        "form": form,
        "signature": signature_for(study, kind),
        "data_sha256": (
            truth_digest(study)
            if kind == Signature.Kind.TRUTH_FINALIZE
            else study_data_digest(study)
        ),
        "opts": Study._meta,
    }
    return render(request, "audit/sign.html", context, status=status)


def amend(request: HttpRequest, study_id: int, admin_site: AdminSite) -> HttpResponse:
    """Amend an open study's protocol: the changes, a reason, and the signer's password."""
    study = get_object_or_404(Study, pk=study_id)
    kind = Signature.Kind.PROTOCOL_AMEND
    if not may_sign(request.user, study, kind):
        raise PermissionDenied("Only the study's coordinators may amend its protocol.")
    finding_types = list(FindingType.objects.filter(study=study).order_by("order", "code"))
    form = AmendProtocolForm(request.POST or None, study=study, finding_types=finding_types)
    status = 200
    username, ip = request.user.get_username(), throttle.client_ip(request)
    if request.method == "POST" and not form.is_valid():
        status = 400
    elif request.method == "POST":
        wait = throttle.claim_attempt(username, ip)  # counted before the password is checked
        if wait:
            form.add_error(None, f"Too many wrong passwords: try again in {(wait + 59) // 60} min.")
            status = 429
        else:
            try:
                signature = amend_protocol(
                    study=study,
                    user=request.user,  # type: ignore[arg-type]
                    password=form.cleaned_data["password"],
                    reason=form.cleaned_data["reason"],
                    changes=form.changes(),
                )
            except SignatureRefusedError as error:
                form.add_error("password", str(error))
                status = 403
            except InvalidAmendmentError as error:
                form.add_error(None, error.message)
                status = 400
            except SignatureStateError as error:
                form.add_error(None, error.message)
                status = 409
            else:
                throttle.clear_failures(username, ip)
                study.refresh_from_db()
                messages.success(
                    request,
                    f"Protocol version {study.protocol_version} in force: signed "
                    f"({signature.data_sha256[:12]}).",
                )
                return HttpResponseRedirect(reverse("admin:studies_study_change", args=[study.pk]))
    context = {
        **admin_site.each_context(request),
        "title": f"Amend the protocol: {study.slug}",
        "study": study,
        "meaning": AMEND_MEANING,
        "form": form,
        "protocol": protocol_content(study),
        "not_amendable": [(k.replace("_", " "), why) for k, why in NOT_AMENDABLE.items()],
        "opts": Study._meta,
    }
    return render(request, "audit/amend.html", context, status=status)
