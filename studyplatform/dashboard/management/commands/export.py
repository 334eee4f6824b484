"""python manage.py export STUDY --format long|marks|mrmcaov|rjafroc|imrmc|json|html -o FILE."""

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
        "Write a study's data for statisticians: the long reads CSV; the marks CSV (one row per "
        "mark: study,reader,case,arm,session,finding,mark,image,x,y,rating,lesion,kind, kind LL "
        "or NL where the truth has lesion locations); MRMCaov CSV, RJafroc workbook (the real "
        "marks and lesions when the truth has lesion locations, else one pseudo-lesion per "
        "case) or iMRMC input (one finding type each); the analysis as JSON, or the report as "
        "one HTML file. The export is recorded in the audit trail."
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

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        fmt = options["fmt"]
        analysis = None
        if fmt in ("json", "html"):
            row = services.analysis_for(study=study, inline=True)
            if row.status != AnalysisStatus.DONE:
                raise CommandError(f"the analysis could not run: {row.error or row.status}")
            analysis = {"study": study.slug, "data_version": row.data_version, **(row.result or {})}
        try:
            result = build_export(study, fmt, finding=options["finding"], analysis=analysis)
        except ExportError as error:
            raise CommandError(str(error)) from None
        path = Path(options["output"])
        size = 0
        with path.open("wb") as out:
            for chunk in result.chunks:
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                out.write(data)
                size += len(data)
        if fmt in RESULT_EXPORTS:
            services.record_interim_view(user=None, study=study, what=f"manage.py export {fmt}")
        services.record_export(
            user=None, study=study, fmt=fmt, details={"finding": options["finding"], "via": "cli"}
        )
        self.stdout.write(f"wrote {path} ({size} bytes, {fmt})")
