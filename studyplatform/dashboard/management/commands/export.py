"""python manage.py export STUDY
--format long|marks|telemetry|mrmcaov|rjafroc|imrmc|json|html|checklist|audit
-o FILE [--finding CODE] [--object OBJECT]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.dashboard import services
from studyplatform.dashboard.access import RESULT_EXPORTS
from studyplatform.dashboard.exports import FORMATS, PER_FINDING, ExportError, build_export
from studyplatform.dashboard.models import AnalysisStatus
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's data for statisticians: the long reads CSV; the marks CSV (one row per"
        " mark: study,reader,case,arm,session,finding,mark,image,x,y,rating,lesion,kind, kind "
        "LL or NL where the truth has lesion locations); the reading telemetry CSV (one row per"
        " series of each read: slices shown, seconds on screen, AI overlay); MRMCaov CSV, "
        "RJafroc workbook (the real marks and lesions when the truth has lesion locations, else"
        " one pseudo-lesion per case) or iMRMC input (one finding type each); the analysis as "
        "JSON, or the report as one HTML file; the submission checklist (CONSORT-AI / STARD-AI "
        "items filled from stored facts, with the flow diagram) as one HTML file; the audit "
        "trail as CSV, or HTML when FILE ends in .html (--object study or TYPE:ID for one "
        "object's events). The export is recorded in the audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="study slug")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("-o", "--output", required=True, help="file to write")
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

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        fmt = options["fmt"]
        if options["object"] and fmt != "audit":
            raise CommandError(f"--object selects audit events; format {fmt} takes none")
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
