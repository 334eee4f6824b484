"""Reads for the coordinator's pages: the study's sites and its site tokens."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.studies.models import Site, SiteToken, Study


def study_sites(study: Study) -> QuerySet[Site]:
    """The study's sites: those it owns and those its cases or site tokens use."""
    mine = Q(study=study) | Q(cases__study=study) | Q(tokens__study=study)
    return Site.objects.filter(pk__in=Site.objects.filter(mine).values("pk")).order_by("code")


@dataclass(frozen=True)
class TokenRow:
    token: SiteToken
    issued_by: str  # "" for a token issued with ``manage.py issue_site_token`` (no user)


def study_tokens(study: Study) -> list[TokenRow]:
    """The study's site tokens, newest first, with who issued each (from the audit trail)."""
    events = AuditEvent.objects.filter(
        study_id=study.pk, action=Action.SITE_TOKEN_ISSUE, object_type="studies.sitetoken"
    ).values_list("object_id", "actor_username")
    issuers = dict(events)
    tokens = SiteToken.objects.filter(study=study).select_related("site").order_by("-pk")
    return [TokenRow(token, issuers.get(str(token.pk), "")) for token in tokens]
