"""Reads of reading data for the front ends."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count, Q

from studyplatform.accounts.roles import COORDINATOR, READER, STATISTICIAN
from studyplatform.reading.models import Reader, ReadingSession
from studyplatform.studies.models import Study


@dataclass(frozen=True)
class SessionSummary:
    study: str
    number: int
    total: int
    done: int
    available_from: str | None


@dataclass(frozen=True)
class Home:
    roles: tuple[str, ...]
    reader_code: str | None
    sessions: tuple[SessionSummary, ...]
    staff_studies: tuple[str, ...]
    can_admin: bool


def home_for(*, user: User) -> Home:
    roles = tuple(
        sorted(
            set(user.groups.values_list("name", flat=True)) & {READER, COORDINATOR, STATISTICIAN}
        )
    )
    reader = Reader.objects.filter(user=user).first()
    sessions: tuple[SessionSummary, ...] = ()
    if reader is not None:
        rows = (
            ReadingSession.objects.filter(reader=reader)
            .select_related("study")
            .annotate(
                total=Count("assignments", distinct=True),
                done=Count(
                    "assignments",
                    filter=Q(assignments__reads__supersedes__isnull=True)
                    & Q(assignments__reads__isnull=False),
                    distinct=True,
                ),
            )
            .order_by("study__slug", "number")
        )
        sessions = tuple(
            SessionSummary(
                study=row.study.slug,
                number=row.number,
                total=row.total,
                done=row.done,
                available_from=row.available_from.isoformat() if row.available_from else None,
            )
            for row in rows
        )
    staff_studies = tuple(
        Study.objects.filter(memberships__user=user).values_list("slug", flat=True).distinct()
    )
    return Home(
        roles=roles,
        reader_code=reader.code if reader else None,
        sessions=sessions,
        staff_studies=staff_studies,
        can_admin=user.is_staff,
    )
