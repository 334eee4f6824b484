"""Failed log-in attempts, kept for a short window to throttle password guessing."""

from __future__ import annotations

from django.db import models


class FailedLogin(models.Model):
    """One refused password for a user name from an address (the user may not exist)."""

    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["username", "ip", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"
