"""Site tokens: how a hospital system authenticates when it sends cases."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
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
