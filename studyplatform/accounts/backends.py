"""The authentication backend: Django's model backend behind the login throttle.

Every password check made for a request (the log-in page, the admin's log-in page) goes through
here, so no log-in form escapes the throttle. Checks without a request (the test client,
commands) are not throttled.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from studyplatform.accounts import throttle


class ThrottledModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if request is None or not username:
            return super().authenticate(request, username=username, password=password, **kwargs)
        ip = throttle.client_ip(request)
        if throttle.is_throttled(username, ip):
            raise PermissionDenied("too many failed log-in attempts")  # stops every backend
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            throttle.record_failure(username, ip)
        else:
            throttle.clear_failures(username, ip)
        return user
