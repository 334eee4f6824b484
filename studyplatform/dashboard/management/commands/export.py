"""python manage.py export STUDY
--format long|marks|measurements|telemetry|mrmcaov|rjafroc|imrmc|json|html|checklist|audit
-o FILE [--finding CODE] [--object OBJECT]; --format sr -o DIR [--stow URL]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.dashboard import services
from studyplatform.dashboard.access import RESULT_EXPORTS
from studyplatform.dashboard.exports import FORMATS, PER_FINDING, ExportError, build_export
from studyplatform.dashboard.exports.dicom import MANIFEST, build_dicom_export
from studyplatform.dashboard.exports.dicom.stow import send
from studyplatform.dashboard.models import AnalysisStatus
from studyplatform.prereads.selectors import PinnedModelError
from studyplatform.studies.dicomweb.archive import ArchiveError
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's data for statisticians: the long reads CSV; the marks CSV (one row per "
        "mark: study,reader,case,arm,session,finding,mark,image,x,y,rating,lesion,kind, kind LL "
        "or NL where the truth has lesion locations); the measurements CSV (one row per length "
        "line: series, slice, endpoints, length in pixels and in mm from the pixel spacing); "
        "the reading telemetry CSV (one row per series of each read: slices shown, seconds on "
        "screen, AI overlay); MRMCaov CSV, RJafroc workbook (the real "
        "marks and lesions when the truth has lesion locations, else one pseudo-lesion per "
        "case) or iMRMC input (one finding type each); the analysis as JSON, or the report as "
        "one HTML file; the submission checklist (CONSORT-AI / STARD-AI items filled from "
        "stored facts, with the flow diagram) as one HTML file; the audit trail as CSV, or "
        "HTML when FILE ends in .html (--object study or TYPE:ID for one object's events); the "
        "reads and AI pre-reads as DICOM (--format sr: -o names a folder; per case a TID 1500 "
        "SR per read, the AI's SR and its Grad-CAM map as a Segmentation, and manifest.csv; "
        "--stow URL also stores them in a DICOMweb archive). The export is recorded in the "
        "audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="study slug")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument(
            "-o", "--output", required=True, help="file to write (a folder for --format sr)"
        )
        parser.add_argument(
            "--finding",
            default=None,
            help=f"finding type code ({', '.join(PER_FINDING)}; needed when the study has several)",
        )

        parser.add_argument(
            "--object",
            default="",
            help="audit only: one object's events: 'study', or TYPE:ID with TYPE a model "
            "(case, read, assignment, truth, aimodel, ...) and ID its primary key (a case: its "
            "ID in the manifest)",
        )
        parser.add_argument(
            "--stow",
            default="",
            metavar="URL",
            help="sr only: also store the files in the DICOMweb archive at URL (STOW-RS; "
            "credentials from DICOMWEB_USERNAME/DICOMWEB_PASSWORD or DICOMWEB_TOKEN)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        fmt = options["fmt"]
        if options["object"] and fmt != "audit":
            raise CommandError(f"--object selects audit events; format {fmt} takes none")
        if options["stow"] and fmt != "sr":
            raise CommandError(f"--stow sends DICOM files; format {fmt} writes none")
        if fmt == "sr":
            self._dicom(study, Path(options["output"]), options["stow"])
            return
        analysis = None
        if fmt in ("json", "html", "checklist"):
            row = services.analysis_for(study=study, inline=True)
            if row.status == AnalysisStatus.DONE:
                analysis = {
                    "study": study.slug,
                    "data_version": row.data_version,
                    **(row.result or {}),
                }
            elif fmt != "checklist":  # the checklist says that the analysis has not run
                raise CommandError(f"the analysis could not run: {row.error or row.status}")
        path = Path(options["output"])
        try:
            result = build_export(
                study,
                fmt,
                finding=options["finding"],
                analysis=analysis,
                audit_object=options["object"],
                audit_html=path.suffix.lower() in (".html", ".htm"),
            )
        except ExportError as error:
            raise CommandError(str(error)) from None
        size = 0
        with path.open("wb") as out:
            for chunk in result.chunks:
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                out.write(data)
                size += len(data)
        if fmt in RESULT_EXPORTS:
            services.record_interim_view(user=None, study=study, what=f"manage.py export {fmt}")
        details = {"finding": options["finding"], "via": "cli"}
        if fmt == "audit":
            details["object"] = options["object"]
        services.record_export(user=None, study=study, fmt=fmt, details=details)
        self.stdout.write(f"wrote {path} ({size} bytes, {fmt})")

    def _dicom(self, study: Study, directory: Path, stow: str) -> None:
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"--format sr writes a folder: {directory} is a file")
        try:
            export = build_dicom_export(study)
        except PinnedModelError as error:
            raise CommandError(str(error)) from None
        export.write(directory)
        # The files are written: the export is recorded now, whatever the archive answers.
        details = {"via": "cli", "files": len(export.files), "left_out": len(export.skipped)}
        services.record_export(
            user=None, study=study, fmt="sr", details=details, interim_what="manage.py export sr"
        )
        sent = 0
        if stow:
            try:
                sent = send(export, stow)
            except ArchiveError as error:
                raise CommandError(f"{error} (the files are written in {directory})") from None
            services.record_export(
                user=None, study=study, fmt="sr", details={"via": "stow", "url": stow, "sent": sent}
            )
        self.stdout.write(
            f"wrote {len(export.files)} DICOM file(s) and {MANIFEST} to {directory}; "
            f"{len(export.skipped)} left out (listed in {MANIFEST})"
            + (f"; stored {sent} in {stow}" if stow else "")
        )
