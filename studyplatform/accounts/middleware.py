"""Middleware of the accounts: forwarded headers, the log-in throttle's answer, private pages.

LoginThrottleMiddleware answers 429 with a clear message to a log-in attempt that the throttle
refuses: before the view when the count is already over the limit, and after it when the backend
refused the attempt (a parallel attempt took the last check). This turns the log-in page's generic
"did not match" into "too many attempts, try again in N minutes" with the right status code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers

from studyplatform.accounts import throttle, totp
from studyplatform.accounts.backends import THROTTLED_ATTRIBUTE
from studyplatform.audit.models import Action
from studyplatform.audit.services import record


def _login_paths() -> set[str]:
    paths = set()
    for name in ("login", "admin:login"):
        try:
            paths.add(reverse(name))
        except NoReverseMatch:
            continue
    return paths


class ForwardedHeadersMiddleware:
    """Drop X-Forwarded-* headers unless the direct peer is one of TRUSTED_PROXIES.

    First in the stack, so that neither the HTTPS check (SECURE_PROXY_SSL_HEADER) nor the
    throttle's address ever reads a header that the client wrote itself.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not throttle.is_trusted_proxy(str(request.META.get("REMOTE_ADDR") or "")):
            for name in [key for key in request.META if key.startswith("HTTP_X_FORWARDED_")]:
                del request.META[name]
        return self.get_response(request)


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in _login_paths():
            username = request.POST.get("username", "")
            wait = throttle.retry_after(username, throttle.client_ip(request)) if username else 0
            if wait:
                return _throttled(request, wait)
            response = self.get_response(request)
            wait = getattr(request, THROTTLED_ATTRIBUTE, 0)
            if wait:
                return _throttled(request, wait)
            _audit_password_login(request, username, response)
            return response
        return self.get_response(request)


def _audit_password_login(request: HttpRequest, username: str, response: HttpResponse) -> None:
    """Record a password log-in (a redirect onwards), or a refused one (the form shown again),
    on either log-in page.

    Here rather than in the views: the admin's log-in page is Django's own, and both pages pass
    this middleware.
    """
    ip = throttle.client_ip(request) or ""
    user = getattr(request, "user", None)
    if response.status_code == 302 and user is not None and user.is_authenticated:
        request.session.pop(totp.SESSION_KEY, None)  # a new log-in passes the code again
        record(
            actor=user,
            action=Action.USER_LOGIN,
            obj=user,
            object_type="auth.user",
            after={"method": "password", "ip": ip},
        )
    elif response.status_code == 200 and username:
        record(
            actor=None,
            action=Action.USER_LOGIN_REFUSED,
            object_type="auth.user",
            after={"method": "password", "username": username[:150], "ip": ip},
        )


def _throttled(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(
        request, "accounts/login_throttled.html", {"minutes": (wait + 59) // 60}, status=429
    )
    response["Retry-After"] = str(wait)
    return response


class StaffTOTPMiddleware:
    """With REQUIRE_STAFF_TOTP, a staff session sees no page before its one-time password.

    After AuthenticationMiddleware, so it covers every page (the admin, the dashboard, the API
    for signed-in users) whatever decorator a view has. Until the session has passed the code,
    a staff user is sent to the code page (or to enrolment without a secret yet); the log-out,
    those pages themselves and static files stay reachable. Readers are never asked.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.REQUIRE_STAFF_TOTP
            and request.user.is_authenticated
            and not totp.is_verified(request)
            and not _totp_exempt(request.path)
            and totp.required_for(request.user)
        ):
            enrolled = isinstance(request.user, User) and totp.is_enrolled(request.user)
            page = "totp_verify" if enrolled else "totp_enrol"
            return redirect(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


def _totp_exempt(path: str) -> bool:
    if path.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
        return True
    names = ("totp_enrol", "totp_verify", "logout", "admin:logout", "login", "health")
    paths = set()
    for name in names:
        try:
            paths.add(reverse(name))
        except NoReverseMatch:
            continue
    return path in paths


class PrivatePagesMiddleware:
    """Pages for a logged-in user are never stored by the browser or a shared cache.

    A reader's page can hold what another user must not see (an allocation, AI output in the
    assisted arm): the back button or a proxy must not replay it to someone else.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


INLINE_STYLES_ATTRIBUTE = "csp_allows_inline_styles"

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


def allow_inline_styles(view: _View) -> _View:
    """Let one page apply inline styles (``style-src 'unsafe-inline'``); scripts stay 'self'.

    For pages that draw Plotly charts: plotly.js inserts its own stylesheet and each chart's
    mode-bar colours as <style> elements at run time.
    """

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(*args, **kwargs)
        setattr(response, INLINE_STYLES_ATTRIBUTE, True)
        return response

    return cast(_View, wrapped)


class ContentSecurityPolicyMiddleware:
    """Sends CONTENT_SECURITY_POLICY on every response that has none of its own.

    Pages load scripts and styles only from the site's own static files, so a script injected
    into stored text cannot run even if escaping were ever missed. A view marked with
    ``allow_inline_styles`` gets the same policy with inline styles allowed.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            policy = self.policy
            if getattr(response, INLINE_STYLES_ATTRIBUTE, False):
                policy = policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
            response["Content-Security-Policy"] = policy
        return response
