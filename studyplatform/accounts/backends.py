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

THROTTLED_ATTRIBUTE = "login_throttled_for"


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
        wait = throttle.claim_attempt(username, ip)  # counted before the password is checked
        if wait:
            # The middleware turns this into a 429 with the wait, however the view answers.
            setattr(request, THROTTLED_ATTRIBUTE, wait)
            raise PermissionDenied("too many failed log-in attempts")  # stops every backend
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            throttle.clear_failures(username, ip)
        return user
