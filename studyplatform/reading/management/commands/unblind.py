"""Unblind a running study before its lock (audited, with a reason)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.reading.services import ReadingError
from studyplatform.reading.services.concealment import unblind_study
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Reveal STUDY's seed and arms before the study is locked. Only a superuser or the "
        "study's statistician may; the reason and the revealed seed (checked against the "
        "commitment recorded at randomization) go into the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="Study slug.")
        parser.add_argument("--user", required=True, help="Who unblinds (username).")
        parser.add_argument("--reason", required=True, help="Why the study is unblinded now.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {options['study']!r}")
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        try:
            unblind_study(study=study, user=user, reason=options["reason"])
        except (ReadingError, PermissionDenied) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Study {study.slug!r} is unblinded: seed {study.seed}.")
        )
