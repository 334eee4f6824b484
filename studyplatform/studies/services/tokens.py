"""Site tokens: how a hospital system authenticates when it sends cases."""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Site, SiteToken, Study


def issue_site_token(*, study: Study, site: Site, name: str) -> str:
    """Create a token for ``site`` to send cases to ``study``; the token is returned only here.

    A locked study takes no new case, so it gets no new token (``StudyLockedError``).
    """
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        lock_study_for_write(study)
        SiteToken.objects.create(
            study=study,
            site=site,
            name=name,
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        )
    return token


def authenticate_site_token(token: str) -> SiteToken | None:
    """The active token matching ``token``, with its study and site; None if there is none."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    found = SiteToken.objects.active().select_related("study", "site").filter(token_sha256=digest)
    site_token = found.first()
    if site_token is not None:
        site_token.last_used_at = timezone.now()
        site_token.save(update_fields=["last_used_at"])
    return site_token


INTAKE_WINDOW = timedelta(minutes=1)


def claim_intake_request(*, site_token: SiteToken) -> int:
    """Count one intake request of ``site_token`` if INTAKE_RATE_LIMIT allows it.

    Returns 0 when the request may go on (it is counted), else the seconds until the token's
    minute is over. One conditional UPDATE on the token's row counts and decides, so parallel
    requests in every web worker cannot all read "under the limit": at most INTAKE_RATE_LIMIT
    requests a minute get through. A limit of 0 turns the limit off.
    """
    limit = settings.INTAKE_RATE_LIMIT
    if limit == 0:
        return 0
    now = timezone.now()
    new_window = Q(window_start__isnull=True) | Q(window_start__lte=now - INTAKE_WINDOW)
    claimed = (
        SiteToken.objects.filter(pk=site_token.pk)
        .filter(new_window | Q(window_requests__lt=limit))
        .update(
            window_requests=Case(When(new_window, then=Value(1)), default=F("window_requests") + 1),
            window_start=Case(When(new_window, then=Value(now)), default=F("window_start")),
        )
    )
    if claimed:
        return 0
    started = SiteToken.objects.filter(pk=site_token.pk).values_list("window_start", flat=True)
    window_start = started.first() or now
    return max(1, math.ceil((window_start + INTAKE_WINDOW - now).total_seconds()))
