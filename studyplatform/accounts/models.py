"""Log-in attempts per user name and address, counted in one row to throttle password guessing."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LoginAttempts(models.Model):
    """Password checks for a user name from an address since ``window_start`` (successes clear it).

    One row per (user name, address), so that the throttle counts with one conditional
    INSERT ... ON CONFLICT DO UPDATE: parallel attempts cannot all read "under the limit".
    """

    username = models.CharField(max_length=150)
    ip = models.CharField(max_length=64, blank=True, default="")  # "" when the address is unknown
    window_start = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "accounts_loginattempts"  # named in the throttle's SQL
        constraints = [
            models.UniqueConstraint(fields=["username", "ip"], name="login_attempts_once_per_key")
        ]
        indexes = [models.Index(fields=["window_start"])]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip or '?'}: {self.attempts} since {self.window_start}"


class StaffTOTP(models.Model):
    """A staff account's enrolled time-based one-time password (RFC 6238) and backup codes.

    ``last_counter`` is the time step of the last accepted code: a code is accepted once, so one
    seen over a shoulder or replayed from a log cannot be used again. Backup codes are stored as
    SHA-256 digests (they are long random strings, so a slow hash adds nothing) and each works
    once.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_totp"
    )
    secret = models.CharField(max_length=64)  # base32
    confirmed_at = models.DateTimeField()
    last_counter = models.BigIntegerField(default=0)
    backup_code_digests = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "staff one-time password"

    def __str__(self) -> str:
        return f"one-time password of user {self.user_id}"
