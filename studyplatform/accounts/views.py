"""The log-in page (with the single sign-on button when configured) and the staff one-time
password pages: enrolment (QR code, then backup codes) and the code asked after log-in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from studyplatform.accounts import throttle, totp

ENROL_SECRET_KEY = "staff_totp_enrol_secret"  # noqa: S105 (a session key name)


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["sso_enabled"] = settings.OIDC_ENABLED
        context["sso_provider_name"] = settings.OIDC_PROVIDER_NAME
        return context


def _staff_user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not totp.required_for(user):
        raise PermissionDenied("one-time passwords are for staff accounts")
    return user


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _throttled(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(
        request, "accounts/login_throttled.html", {"minutes": (wait + 59) // 60}, status=429
    )
    response["Retry-After"] = str(wait)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def totp_enrol(request: HttpRequest) -> HttpResponse:
    """Show a new secret as a QR code; a correct code from the app stores it.

    Re-enrolling replaces an existing secret, so it needs the current code first (a session
    that has passed the check): a stolen password alone cannot swap in the thief's app.
    """
    user = _staff_user(request)
    if totp.is_enrolled(user) and not totp.is_verified(request):
        query = urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(f"{resolve_url('totp_verify')}?{query}")
    secret = request.session.get(ENROL_SECRET_KEY)
    if not isinstance(secret, str) or request.method == "GET":
        secret = totp.new_secret()
        request.session[ENROL_SECRET_KEY] = secret
    error = ""
    status = 200
    if request.method == "POST":
        outcome = totp.enrol(
            user=user,
            secret=secret,
            code=request.POST.get("code", ""),
            ip=throttle.client_ip(request),
        )
        if outcome.wait:
            return _throttled(request, outcome.wait)
        if outcome.ok:
            del request.session[ENROL_SECRET_KEY]
            totp.mark_verified(request, user)
            return render(
                request,
                "accounts/totp_backup_codes.html",
                {"codes": outcome.backup_codes, "next": _next_url(request)},
            )
        error, status = "That code is not right. Enter the code your app shows now.", 400
    uri = totp.provisioning_uri(user, secret)
    context = {
        "secret": secret,
        "uri": uri,
        "qr_code": totp.qr_code_data_uri(uri),
        "error": error,
        "next": _next_url(request),
    }
    return render(request, "accounts/totp_enrol.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def totp_verify(request: HttpRequest) -> HttpResponse:
    """The code asked after log-in (or a backup code)."""
    user = _staff_user(request)
    if not totp.is_enrolled(user):
        query = urlencode({"next": _next_url(request)})
        return HttpResponseRedirect(f"{resolve_url('totp_enrol')}?{query}")
    error = ""
    status = 200
    if request.method == "POST":
        outcome = totp.verify(
            user=user, code=request.POST.get("code", ""), ip=throttle.client_ip(request)
        )
        if outcome.wait:
            return _throttled(request, outcome.wait)
        if outcome.ok:
            request.session.cycle_key()  # a new session id for the stronger session
            totp.mark_verified(request, user)
            return HttpResponseRedirect(_next_url(request))
        error, status = "That code is not right (or was used already).", 400
    return render(
        request,
        "accounts/totp_verify.html",
        {"error": error, "next": _next_url(request)},
        status=status,
    )
