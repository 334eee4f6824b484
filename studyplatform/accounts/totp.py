"""Time-based one-time passwords for staff (RFC 6238, with pyotp): enrolment and checking.

Who must use one: superusers, admin users (``is_staff``) and the coordinator and statistician
roles; readers never. A session that passed the check carries the user's id under
:data:`SESSION_KEY` (logging out or in again ends it). Every check is counted by the log-in
throttle under the name ``totp:<username>`` and audited; a success clears the count.

Codes are accepted for the current 30-second step and one step either side (clock drift), and
each step once: a code already used is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from studyplatform.accounts import throttle
from studyplatform.accounts.models import StaffTOTP
from studyplatform.accounts.roles import COORDINATOR, STATISTICIAN
from studyplatform.audit.models import Action
from studyplatform.audit.services import record

SESSION_KEY = "staff_totp_verified_user"
BACKUP_CODES = 10
DRIFT_STEPS = 1


def required_for(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether this account must pass a one-time password (staff do, readers do not)."""
    if not isinstance(user, User):
        return False
    if user.is_superuser or user.is_staff:
        return True
    return bool(user.groups.filter(name__in=(COORDINATOR, STATISTICIAN)).exists())


def is_verified(request: HttpRequest) -> bool:
    return bool(
        request.user.is_authenticated and request.session.get(SESSION_KEY) == request.user.pk
    )


def mark_verified(request: HttpRequest, user: User) -> None:
    request.session[SESSION_KEY] = user.pk


def is_enrolled(user: User) -> bool:
    return StaffTOTP.objects.filter(user=user).exists()


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://totp/...`` URI that authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.get_username(), issuer_name=settings.TOTP_ISSUER
    )


def qr_code_data_uri(uri: str) -> str:
    """The URI as an SVG QR code in a ``data:`` URL (the page's CSP allows data: images)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    encoded = base64.b64encode(image.to_string()).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def _matching_counter(secret: str, code: str, after: int) -> int | None:
    """The time step (counter) whose code is ``code``, if it is near now and after ``after``."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(timezone.now())
    for counter in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if counter > after and hmac.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


@dataclass(frozen=True)
class Outcome:
    """What a code check decided: ``ok``, or refused (``wait`` seconds when throttled)."""

    ok: bool
    wait: int = 0
    backup_codes: tuple[str, ...] = ()  # shown once, after enrolment


def _claim(user: User, ip: str | None) -> int:
    return throttle.claim_attempt(f"totp:{user.get_username()}", ip)


def _refuse(user: User, ip: str | None, reason: str) -> Outcome:
    record(
        actor=user,
        action=Action.USER_TOTP_REFUSED,
        obj=user,
        object_type="auth.user",
        after={"ip": ip or "", "reason": reason},
    )
    return Outcome(ok=False)


def enrol(*, user: User, secret: str, code: str, ip: str | None) -> Outcome:
    """Store ``secret`` as the user's one-time password once ``code`` proves the app has it."""
    wait = _claim(user, ip)
    if wait:
        return Outcome(ok=False, wait=wait)
    counter = _matching_counter(secret, code, after=0)
    if counter is None:
        return _refuse(user, ip, "wrong code at enrolment")
    backup = tuple("-".join(secrets.token_hex(3) for _ in range(2)) for _ in range(BACKUP_CODES))
    with transaction.atomic():
        StaffTOTP.objects.update_or_create(
            user=user,
            defaults={
                "secret": secret,
                "confirmed_at": timezone.now(),
                "last_counter": counter,
                "backup_code_digests": [_digest(item) for item in backup],
            },
        )
        record(
            actor=user,
            action=Action.USER_TOTP_ENROL,
            obj=user,
            object_type="auth.user",
            after={"ip": ip or "", "backup_codes": len(backup)},
        )
    throttle.clear_failures(f"totp:{user.get_username()}", ip)
    return Outcome(ok=True, backup_codes=backup)


def verify(*, user: User, code: str, ip: str | None) -> Outcome:
    """Check a code (or an unused backup code) of an enrolled user; each is accepted once."""
    wait = _claim(user, ip)
    if wait:
        return Outcome(ok=False, wait=wait)
    with transaction.atomic():
        device = StaffTOTP.objects.select_for_update().filter(user=user).first()
        if device is None:
            return _refuse(user, ip, "not enrolled")
        counter = _matching_counter(device.secret, code, after=device.last_counter)
        used = "totp"
        if counter is not None:
            device.last_counter = counter
            device.save(update_fields=["last_counter"])
        elif _digest(code) in device.backup_code_digests:
            device.backup_code_digests.remove(_digest(code))
            device.save(update_fields=["backup_code_digests"])
            used = "backup code"
        else:
            return _refuse(user, ip, "wrong code")
        record(
            actor=user,
            action=Action.USER_TOTP_VERIFY,
            obj=user,
            object_type="auth.user",
            after={"ip": ip or "", "method": used},
        )
    throttle.clear_failures(f"totp:{user.get_username()}", ip)
    return Outcome(ok=True)
