"""The container's own health check reaches /health/ whatever the production settings say.

Docker runs the image's HEALTHCHECK inside the web container: a plain-HTTP request to
127.0.0.1:8000 with Host 127.0.0.1. Behind the TLS proxy that request would be redirected to
HTTPS (SECURE_SSL_REDIRECT) and refused for its Host (ALLOWED_HOSTS), so it could never pass.
This middleware, first in the stack, answers it before those checks, for loopback peers only:
everyone else goes through the proxy and the usual checks.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from studyplatform.dashboard.views import health

HEALTH_PATH = "/health/"
LOOPBACK = {"127.0.0.1", "::1"}


class LocalHealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH and request.META.get("REMOTE_ADDR") in LOOPBACK:
            return health(request)
        return self.get_response(request)
