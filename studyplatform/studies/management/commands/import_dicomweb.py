"""Import cases from a DICOMweb archive (QIDO-RS search, WADO-RS retrieval): one per study."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydicom.datadict import tag_for_keyword

from studyplatform.studies.dicomweb.archive import Archive, ArchiveError
from studyplatform.studies.dicomweb.imports import CASE_ID_SOURCES, import_from_archive
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Site, Study


def _filters(queries: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for query in queries:
        keyword, equals, value = query.partition("=")
        keyword = keyword.strip()
        if not equals or not keyword or not value.strip():
            raise CommandError(f"--query {query!r} must be KEYWORD=VALUE, e.g. StudyDate=20240101-")
        if tag_for_keyword(keyword) is None:
            raise CommandError(f"--query {query!r}: {keyword!r} is not a DICOM attribute keyword")
        if keyword in filters:
            raise CommandError(f"--query names {keyword} twice")
        filters[keyword] = value.strip()
    return filters


def _site(code: str | None) -> str:
    if code:
        if not Site.objects.filter(code=code).exists():
            raise CommandError(f"no site {code!r}")
        return code
    codes = list(Site.objects.values_list("code", flat=True)[:2])
    if len(codes) != 1:
        raise CommandError("give the archive's site with --site (the platform has several or none)")
    return codes[0]


class Command(BaseCommand):
    help = (
        "Import studies from a DICOMweb archive as cases (one case per DICOM study): QIDO-RS "
        "finds the studies (all matching --query, or those named by --study-uid), WADO-RS "
        "retrieves their instances one at a time, and each study is de-identified and stored as "
        "a folder import would. Instances without pixel data are skipped. Running it again "
        "imports nothing new; a stored study whose instances changed is reported, not merged. "
        "Credentials come from DICOMWEB_USERNAME/DICOMWEB_PASSWORD or DICOMWEB_TOKEN. Exits "
        "non-zero if any study was not imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="The study's slug.")
        parser.add_argument(
            "--url", required=True, help="The archive's DICOMweb root, e.g. http://pacs/dicom-web."
        )
        parser.add_argument(
            "--study-uid",
            action="append",
            default=[],
            metavar="UID",
            help="Import this Study Instance UID (repeatable); default: every matching study.",
        )
        parser.add_argument(
            "--query",
            action="append",
            default=[],
            metavar="KEYWORD=VALUE",
            help="A QIDO-RS filter, e.g. PatientID=123, StudyDate=20240101-20240131, "
            "ModalitiesInStudy=CT (repeatable; all must match).",
        )
        parser.add_argument("--site", help="The site the cases come from (default: the only one).")
        parser.add_argument(
            "--case-id-from",
            choices=CASE_ID_SOURCES,
            default="accession",
            help="What names each study's case: its accession number (default), patient ID or "
            "Study Instance UID. The case ID is the pseudonym written into the stored files.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        filters = _filters(options["query"])
        site = _site(options["site"])
        started = time.perf_counter()
        try:
            archive = Archive(
                options["url"],
                username=settings.DICOMWEB_USERNAME,
                password=settings.DICOMWEB_PASSWORD,
                token=settings.DICOMWEB_TOKEN,
                timeout=settings.DICOMWEB_TIMEOUT,
            )
        except ArchiveError as error:
            raise CommandError(str(error)) from None
        try:
            report = import_from_archive(
                study=study,
                archive=archive,
                site_code=site,
                study_uids=options["study_uid"],
                filters=filters,
                case_id_from=options["case_id_from"],
            )
        except FrozenStudyError as error:
            raise CommandError(f"{error}; no case was imported") from None
        except ArchiveError as error:
            raise CommandError(f"{error}; no case was imported") from None
        finally:
            archive.close()
        elapsed = time.perf_counter() - started
        for case_id in report.created:
            self.stdout.write(f"imported   {case_id}")
        for where in report.burned_in:
            self.stdout.write(
                self.style.WARNING(f"review     {where}: header says burned-in annotation")
            )
        if report.studies_found and not report.created:
            self.stdout.write("nothing new to import")
        for problem in report.changed:
            self.stderr.write(f"changed    {problem}")
        for problem in report.problems:
            self.stderr.write(f"error      {problem}")
        self.stdout.write(f"\n{report.summary()} in {elapsed:.1f} s.")
        if not report.ok:
            raise CommandError(
                f"{len(report.changed) + len(report.problems)} stud(ies) or instance(s) were "
                "not imported"
            )
