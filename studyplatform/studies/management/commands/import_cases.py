"""Import cases from a folder of images and its manifest.csv, de-identifying every file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Study
from studyplatform.studies.services import import_cases


class Command(BaseCommand):
    help = (
        "Import the cases listed in DIR/manifest.csv (columns case_id, site, images (names "
        "separated by ';'), optional modality and truth_<finding> with 0/1). DICOM (any common "
        "transfer syntax), PNG and JPEG; every file is de-identified (DICOM PS3.15 Basic Profile) "
        "before it is stored. Bad files are reported and the rest imported; running it again "
        "changes nothing. Exits non-zero if any file or row had a problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument("directory", type=Path, help="Folder holding manifest.csv and images.")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        directory: Path = options["directory"]
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a folder")
        started = time.perf_counter()
        try:
            report = import_cases(study=study, directory=directory)
        except FrozenStudyError as error:
            raise CommandError(f"{error}; no case was imported") from None
        elapsed = time.perf_counter() - started
        for case_id in report.imported:
            self.stdout.write(f"imported   {case_id}")
        for note in report.notes:
            self.stdout.write(f"note       {note}")
        for where in report.burned_in:
            self.stdout.write(
                self.style.WARNING(f"review     {where}: header says burned-in annotation")
            )
        self.stdout.write(
            f"\n{len(report.imported)} imported, {len(report.unchanged)} unchanged (already "
            f"stored), {len(report.problems)} error(s) in {elapsed:.1f} s."
        )
        if report.problems:
            for problem in report.problems:
                self.stderr.write(f"error      {problem}")
            raise CommandError(f"{len(report.problems)} file(s) or row(s) were not imported")
