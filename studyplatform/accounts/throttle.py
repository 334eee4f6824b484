"""Login throttling: after LOGIN_FAILURE_LIMIT password checks for one user name from one address
within LOGIN_FAILURE_WINDOW seconds that did not succeed, further attempts are refused until the
window has passed.

Counted in the database (not a per-process cache) so that every web worker sees the same count,
and counted *before* the password is checked, in one conditional upsert: an attempt first claims
one of the window's checks, so parallel requests cannot all read "under the limit" and then each
check a password. A success clears the count. The same counter guards password re-entry for
electronic signatures.

The client's address comes from ``X-Forwarded-For`` only when the request arrives from one of
TRUSTED_PROXIES; anyone else could write that header.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

from studyplatform.accounts.models import LoginAttempts


def _key(username: str) -> str:
    return username.strip().lower()[:150]


def is_trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the direct peer, or behind our proxies the hop they vouch for.

    ``X-Forwarded-For`` is read only when the direct peer is a trusted proxy, from the right: the
    first hop that is not itself a trusted proxy is the client (hops to its left were written by
    the client and prove nothing).
    """
    peer = str(request.META.get("REMOTE_ADDR") or "")
    if not is_trusted_proxy(peer):
        return peer or None
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # not an address: nothing to its left can be trusted either
        address = hop
        if not is_trusted_proxy(hop):
            break
    return address


def _window() -> timedelta:
    return timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)


def _db_time(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def _seconds_left(window_start: datetime, now: datetime) -> int:
    remaining = window_start + _window() - now
    return max(1, int(remaining.total_seconds()) + 1)


def retry_after(username: str, ip: str | None) -> int:
    """Seconds until the next attempt is allowed; 0 when it is allowed now (nothing is counted)."""
    now = timezone.now()
    row = LoginAttempts.objects.filter(
        username=_key(username), ip=ip or "", window_start__gt=now - _window()
    ).first()
    if row is None or row.attempts < settings.LOGIN_FAILURE_LIMIT:
        return 0
    return _seconds_left(row.window_start, now)


def claim_attempt(username: str, ip: str | None) -> int:
    """Count one password check for ``username`` from ``ip`` if the limit allows it.

    Returns 0 when the attempt may check a password (it is counted until ``clear_failures``),
    else the seconds to wait. One statement decides, so at most LOGIN_FAILURE_LIMIT parallel
    attempts are let through.
    """
    now = timezone.now()
    expired = now - _window()
    sql = (
        "INSERT INTO accounts_loginattempts AS row (username, ip, window_start, attempts) "
        "VALUES (%s, %s, %s, 1) "
        "ON CONFLICT (username, ip) DO UPDATE SET "
        "attempts = CASE WHEN row.window_start <= %s THEN 1 ELSE row.attempts + 1 END, "
        "window_start = CASE WHEN row.window_start <= %s THEN excluded.window_start "
        "ELSE row.window_start END "
        "WHERE row.window_start <= %s OR row.attempts < %s "
        "RETURNING attempts"
    )
    stamp, cutoff = _db_time(now), _db_time(expired)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [_key(username), ip or "", stamp, cutoff, cutoff, cutoff, settings.LOGIN_FAILURE_LIMIT],
        )
        claimed = cursor.fetchone()
    if claimed is not None:
        return 0
    return retry_after(username, ip) or 1


def is_throttled(username: str, ip: str | None) -> bool:
    return retry_after(username, ip) > 0


def clear_failures(username: str, ip: str | None) -> None:
    """A successful check: the address starts afresh; stale rows of anyone are dropped."""
    LoginAttempts.objects.filter(username=_key(username), ip=ip or "").delete()
    LoginAttempts.objects.filter(window_start__lte=timezone.now() - _window()).delete()
