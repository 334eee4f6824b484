"""Log-in attempts per user name and address, counted in one row to throttle password guessing."""

from __future__ import annotations

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
