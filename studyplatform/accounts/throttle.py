"""Login throttling: after LOGIN_FAILURE_LIMIT wrong passwords for one user name from one address
within LOGIN_FAILURE_WINDOW seconds, further attempts are refused until the window has passed.

Counted in the database (not a per-process cache) so that every web worker sees the same count.
The same counter guards password re-entry for electronic signatures.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from studyplatform.accounts.models import FailedLogin


def _key(username: str) -> str:
    return username.strip().lower()[:150]


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: behind our TLS proxy, the last X-Forwarded-For hop it added."""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return str(request.META.get("REMOTE_ADDR") or "") or None


def _window() -> timedelta:
    return timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)


def _recent(username: str, ip: str | None) -> list[FailedLogin]:
    since = timezone.now() - _window()
    return list(
        FailedLogin.objects.filter(username=_key(username), ip=ip, at__gte=since).order_by("at")
    )


def retry_after(username: str, ip: str | None) -> int:
    """Seconds until the next attempt is allowed; 0 when it is allowed now."""
    recent = _recent(username, ip)
    if len(recent) < settings.LOGIN_FAILURE_LIMIT:
        return 0
    # Allowed again once the oldest failure that still counts leaves the window.
    oldest_counted = recent[-settings.LOGIN_FAILURE_LIMIT]
    remaining = oldest_counted.at + _window() - timezone.now()
    return max(1, int(remaining.total_seconds()) + 1)


def is_throttled(username: str, ip: str | None) -> bool:
    return retry_after(username, ip) > 0


def record_failure(username: str, ip: str | None) -> None:
    now = timezone.now()
    FailedLogin.objects.filter(at__lt=now - _window()).delete()
    FailedLogin.objects.create(username=_key(username), ip=ip, at=now)


def clear_failures(username: str, ip: str | None) -> None:
    FailedLogin.objects.filter(username=_key(username), ip=ip).delete()
