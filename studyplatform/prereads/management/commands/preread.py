"""Pre-read a study's cases with a registered model, showing a progress bar."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.prereads import services
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.selectors import (
    PinnedModelError,
    PrereadProgress,
    pinned_model,
    preread_progress,
)
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Study


def progress_line(progress: PrereadProgress, width: int = 30) -> str:
    filled = round(width * progress.fraction_done)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {progress.done + progress.failed}/"
        f"{progress.cases}  done {progress.done}  failed {progress.failed}  "
        f"running {progress.running}  pending {progress.pending}"
    )


class Command(BaseCommand):
    help = (
        "Queue AI pre-reads of every case of STUDY by its pinned model on the inference queue and "
        "show a progress bar until they are done (or run them in this process with --sync). "
        "Cases already pre-read by the model are left alone; failed ones are tried again. With "
        "--model another model pre-reads the study for comparison: readers and the analysis "
        "never see its output. A locked study takes no pre-reads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="Study slug.")
        parser.add_argument(
            "--model",
            help="Model name (latest version), for comparison; default: the study's pinned model.",
        )
        parser.add_argument("--sync", action="store_true", help="Run here instead of on workers.")
        parser.add_argument("--no-wait", action="store_true", help="Queue and return at once.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait.")
        parser.add_argument("--batch-size", type=int, default=services.BATCH_SIZE)
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=None,
            help="Cases per forward pass (default: 4 on CPU, 32 on GPU).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        if options["model"]:
            model = (
                AIModel.objects.filter(name=options["model"])
                .order_by("-registered_at", "-pk")
                .first()
            )
            if model is None:
                raise CommandError(f"no model named {options['model']!r}; see register_model")
        else:
            try:
                model = pinned_model(study)
            except PinnedModelError as error:
                raise CommandError(str(error)) from None
            if model is None:
                raise CommandError(
                    f"study {study.slug} pins no AI model: pin a registered model in the study's "
                    "admin page (or name one with --model, for comparison)"
                )
        tty = sys.stderr.isatty()

        def show(progress: PrereadProgress, final: bool = False) -> None:
            line = progress_line(progress)
            if tty:
                self.stderr.write(f"\r{line}", ending="\n" if final else "")
            else:
                self.stderr.write(line)
            self.stderr.flush()

        try:
            self._run(study, model, options, show)
        except FrozenStudyError as error:
            raise CommandError(str(error)) from None

    def _run(
        self,
        study: Study,
        model: AIModel,
        options: dict[str, Any],
        show: Any,
    ) -> None:
        if options["sync"]:
            services.run_prereads_now(
                study=study,
                model=model,
                batch_size=options["batch_size"],
                chunk_size=options["chunk_size"],
                progress=lambda _: show(preread_progress(study, model)),
            )
        else:
            queued = services.request_prereads(
                study=study,
                model=model,
                batch_size=options["batch_size"],
                chunk_size=options["chunk_size"],
            )
            self.stdout.write(f"Queued {queued} pre-reads of {study.slug} by {model}.")
            if options["no_wait"]:
                return
            deadline = time.monotonic() + options["timeout"]
            last = None
            while True:
                progress = preread_progress(study, model)
                if progress != last:
                    show(progress)
                    last = progress
                if progress.finished:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"timed out after {options['timeout']:.0f} s: {progress.as_dict()}; "
                        "is a worker consuming the inference queue?"
                    )
                time.sleep(0.5)
        final = preread_progress(study, model)
        show(final, final=True)
        self.stdout.write(
            self.style.SUCCESS(
                f"{study.slug}: {final.done} of {final.cases} cases pre-read by {model}"
                + (
                    f", {final.failed} failed (see the admin for the errors)"
                    if final.failed
                    else ""
                )
            )
        )
