"""Import ground truth for a study's cases from CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Study
from studyplatform.studies.services import ImportRefusedError, import_truth


class Command(BaseCommand):
    help = (
        "Import ground truth from a CSV with columns case_id, finding, present (0/1) and optional "
        "source (import, adjudication, follow_up) and location (JSON). Lesion locations (for FROC "
        "scoring of the readers' marks): one row per lesion with the optional columns lesion "
        "(whole number from 1; default: row order), image (the image's position in the case), x "
        "(column) and y (row) of the lesion's centre in pixels, radius (pixels, > 0) and weight "
        "(for every lesion of the case and finding or none, summing to 1); the rows of a case and "
        "finding must agree on present and source. A lesion on an absent finding, off its image, "
        "with a radius that is not positive or on an unknown image position is refused. All "
        "rows or none: every problem is reported with its row number. Running it again changes "
        "nothing; a changed row updates the stored truth. Refused once the truth is finalized "
        "(signed) or the study is locked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument("file", type=Path, help="The CSV file.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        try:
            report = import_truth(study=study, path=options["file"])
        except FrozenStudyError as error:
            raise CommandError(f"{error}; no truth was imported") from None
        except ImportRefusedError as error:
            for problem in error.problems:
                self.stderr.write(f"error  {problem}")
            raise CommandError(f"{len(error.problems)} problem(s); no truth was imported") from None
        self.stdout.write(
            f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged."
        )
