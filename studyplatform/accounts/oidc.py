"""Single sign-on with OpenID Connect (mozilla-django-oidc), mapped onto existing accounts.

The authorization code flow with PKCE, a state and a nonce (all checked by mozilla-django-oidc),
and these rules of the platform on top:

- The ID token's signature is checked against the provider's JWKS with the one configured
  asymmetric algorithm, and so are its issuer (when known), audience (our client id), expiry and
  issue time; mozilla-django-oidc alone checks neither audience nor issuer.
- The account is the one active user whose email matches the provider's email claim, and only
  when the provider says ``email_verified`` is true. SSO never creates an account; an unknown,
  unverified, ambiguous or deactivated email is refused with a page that says which.
- Each sign-in is counted by the log-in throttle under ``sso:<email>`` (refused attempts stay
  counted), so a refused account pauses as a wrong password does; attempts that fail before an
  email is known (a bad state, nonce or signature) are counted under ``sso:`` for the address.
- Every sign-in and every refusal is audited.
- An ``amr`` claim (RFC 8176) holding one of OIDC_MFA_AMR counts as the staff one-time password.

Endpoints come from the explicit settings, else from the provider's discovery document, fetched
on first use and kept for an hour.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from studyplatform.accounts import throttle, totp
from studyplatform.accounts.backends import THROTTLED_ATTRIBUTE
from studyplatform.audit.models import Action
from studyplatform.audit.services import record

REFUSAL_ATTRIBUTE = "sso_refusal"
MFA_ATTRIBUTE = "sso_mfa"
DISCOVERY_TTL = 3600
PRE_EMAIL_KEY = "sso:"

REFUSALS = {
    "unverified": "The provider has not verified this email address.",
    "unknown": "No account on this platform has this email address. Ask a coordinator to "
    "create one; signing in with the provider does not create accounts.",
    "ambiguous": "More than one account has this email address. Ask a coordinator to fix it.",
    "inactive": "This account is deactivated.",
    "no-email": "The provider did not send an email address.",
    "invalid": "The sign-in could not be verified (its state, nonce or signature was wrong, "
    "or it was used twice). Start again from the log-in page.",
    "provider": "The provider refused or did not answer. Try again, or log in with a password.",
}

_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


def discovery() -> dict[str, Any]:
    """The provider's discovery document (``{}`` without OIDC_OP_DISCOVERY_URL), cached."""
    url = settings.OIDC_OP_DISCOVERY_URL
    if not url:
        return {}
    cached = _discovered.get(url)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise SuspiciousOperation(f"the discovery document at {url} is not a JSON object")
    _discovered[url] = (time.monotonic(), document)
    return document


def endpoint(setting: str, key: str) -> str:
    """An explicit endpoint setting, else the discovery document's ``key``."""
    explicit: str = getattr(settings, setting)
    if explicit:
        return explicit
    value = discovery().get(key)
    if not isinstance(value, str) or not value:
        raise SuspiciousOperation(f"the provider's discovery document has no {key}")
    return value


def issuer() -> str:
    value = settings.OIDC_OP_ISSUER or discovery().get("issuer", "")
    return value if isinstance(value, str) else ""


def _refuse(
    request: HttpRequest, reason: str, *, email: str = "", user: User | None = None
) -> None:
    setattr(request, REFUSAL_ATTRIBUTE, reason)
    record(
        actor=None,
        action=Action.USER_LOGIN_REFUSED,
        obj=user,
        object_type="auth.user",
        object_id=user.pk if user is not None else "",
        after={
            "method": "sso",
            "reason": reason,
            "email": email,
            "ip": throttle.client_ip(request) or "",
        },
    )


class SSOBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    """Authenticates an OIDC callback as the existing account of a verified email."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the parent's: it reads the endpoints from settings at construction, and Django
        # builds a backend for every request of a signed-in user; ours resolve them on use.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = User

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (the parent's attribute name)
        return endpoint("OIDC_OP_TOKEN_ENDPOINT", "token_endpoint")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return endpoint("OIDC_OP_USER_ENDPOINT", "userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return endpoint("OIDC_OP_JWKS_ENDPOINT", "jwks_uri")

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        """Signature, algorithm, audience, issuer, expiry: a token for another client or
        from another issuer is refused even when its signature is good."""
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"the token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=issuer() or None,
                options={"require": ["exp", "iat", "sub", "aud"]},
                leeway=60,
            )
        except jwt.InvalidTokenError as error:
            raise SuspiciousOperation(f"the ID token was refused: {error}") from None
        return claims

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        request: HttpRequest = self.request
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo subject differs from the ID token's")
        email = str(claims.get("email") or payload.get("email") or "").strip()
        if not email:
            _refuse(request, "no-email")
            return None
        ip = throttle.client_ip(request)
        key = f"sso:{email}"
        wait = throttle.claim_attempt(key, ip)
        if wait:
            setattr(request, THROTTLED_ATTRIBUTE, wait)
            raise PermissionDenied("too many refused sign-ins")
        verified = claims.get("email_verified", payload.get("email_verified"))
        if verified is not True and str(verified).lower() != "true":
            _refuse(request, "unverified", email=email)
            return None
        users = list(User.objects.filter(email__iexact=email)[:2])
        if not users:
            _refuse(request, "unknown", email=email)
            return None
        if len(users) > 1:
            _refuse(request, "ambiguous", email=email)
            return None
        user = users[0]
        if not self.user_can_authenticate(user):
            _refuse(request, "inactive", email=email, user=user)
            return None
        throttle.clear_failures(key, ip)
        amr = payload.get("amr") or []
        trusted = set(settings.OIDC_MFA_AMR)
        setattr(request, MFA_ATTRIBUTE, isinstance(amr, list) and bool(trusted & set(amr)))
        return user

    def get_user(self, user_id: Any) -> User | None:
        """The session's user, unless deactivated since (the parent does not check)."""
        user = User.objects.filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None


class SSORequestView(OIDCAuthenticationRequestView):  # type: ignore[misc]
    """Sends the browser to the provider (with state, nonce and PKCE challenge)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoint(
                "OIDC_OP_AUTHORIZATION_ENDPOINT", "authorization_endpoint"
            )
        except (requests.RequestException, SuspiciousOperation, ValueError):
            return refused_page(request, "provider")
        response: HttpResponse = super().get(request)
        return response


def refused_page(request: HttpRequest, reason: str) -> HttpResponse:
    wait = getattr(request, THROTTLED_ATTRIBUTE, 0)
    if wait:
        response = render(
            request, "accounts/login_throttled.html", {"minutes": (wait + 59) // 60}, status=429
        )
        response["Retry-After"] = str(wait)
        return response
    return render(
        request,
        "accounts/sso_refused.html",
        {"message": REFUSALS[reason], "provider": settings.OIDC_PROVIDER_NAME},
        status=403,
    )


class SSOCallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """The provider's redirect back: sign in, or a page that says why not."""

    def get(self, request: HttpRequest) -> HttpResponse:
        ip = throttle.client_ip(request)
        wait = throttle.retry_after(PRE_EMAIL_KEY, ip)
        if wait:
            setattr(request, THROTTLED_ATTRIBUTE, wait)
            return refused_page(request, "invalid")
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation:
            response = self._failed(request, "invalid")
        except requests.RequestException:
            response = self._failed(request, "provider")
        return response

    def _failed(self, request: HttpRequest, reason: str) -> HttpResponse:
        throttle.claim_attempt(PRE_EMAIL_KEY, throttle.client_ip(request))
        _refuse(request, reason)
        return refused_page(request, reason)

    def login_failure(self) -> HttpResponse:
        request = self.request
        if getattr(request, THROTTLED_ATTRIBUTE, 0):
            return refused_page(request, "invalid")
        reason = getattr(request, REFUSAL_ATTRIBUTE, None)
        if reason is None:  # no code, an error from the provider, or a state never issued
            return self._failed(request, "provider" if request.GET.get("error") else "invalid")
        return refused_page(request, reason)

    def login_success(self) -> HttpResponse:
        request = self.request
        user: User = self.user
        auth.login(request, user, backend="studyplatform.accounts.oidc.SSOBackend")
        mfa = bool(getattr(request, MFA_ATTRIBUTE, False))
        request.session.pop(totp.SESSION_KEY, None)
        if mfa:
            totp.mark_verified(request, user)
        record(
            actor=user,
            action=Action.USER_LOGIN,
            obj=user,
            object_type="auth.user",
            after={
                "method": "sso",
                "mfa_at_provider": mfa,
                "ip": throttle.client_ip(request) or "",
            },
        )
        return HttpResponseRedirect(self.success_url)
