"""Randomize a study from its seed and store the allocation (idempotent)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.reading.models import Assignment
from studyplatform.reading.services import ReadingError, open_study, randomize_study
from studyplatform.studies.concealment import seed_commitment
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Allocate STUDY's readers, cases and arms from the study's seed and store the sessions "
        "and assignments before reading starts. Running it again verifies the stored allocation "
        "against the seed (its fingerprint) and changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Discard and redo a draft study's allocation whose cases or readers changed.",
        )
        parser.add_argument(
            "--open", action="store_true", help="Open the study for reading afterwards."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {options['study']!r}")
        try:
            record = randomize_study(study=study, replace=options["replace"])
            if options["open"]:
                study = open_study(study=study)
        except (ReadingError, FrozenStudyError) as error:
            raise CommandError(str(error)) from None
        per_arm = Counter(
            Assignment.objects.filter(session__study=study, session__training=False).values_list(
                "arm__name", flat=True
            )
        )
        arms = ", ".join(f"{name} {count}" for name, count in sorted(per_arm.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Study {study.slug!r} ({record.design}, seed concealed, sha256 "
                f"{seed_commitment(record.seed)[:16]}...): {record.rows} "
                f"assignments ({arms or 'none yet'}); fingerprint {record.fingerprint or '-'}; "
                f"state {study.state}."
            )
        )
