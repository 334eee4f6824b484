"""Register an AI model: a file (or MONAI bundle directory) plus its spec."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.prereads.inference import FORMATS
from studyplatform.prereads.intended_use import (
    FIELDS,
    IntendedUse,
    IntendedUseFrozenError,
    set_intended_use,
)
from studyplatform.prereads.registry import RegistrationError, read_spec_file, register_model


class Command(BaseCommand):
    help = (
        "Register a model: load it, check it against its spec on a dummy input, record its "
        "sha256 (checked again before every run). Registering the same file again changes "
        "nothing; a different file needs a new version. Loading a model runs its code: this "
        "command takes any path and factory (the web admin only MODELS_ROOT and "
        "MODEL_FACTORIES). The registration is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Model name (a slug), e.g. chest-cnn.")
        parser.add_argument("version", help="Version label, e.g. 1.2.0.")
        parser.add_argument("path", help="Weights file, TorchScript file or bundle directory.")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, required=True)
        parser.add_argument("--spec", required=True, help="spec.json (finding codes, input, ...).")
        parser.add_argument(
            "--factory", default="", help="module:function building the network (factory format)."
        )
        use = parser.add_argument_group(
            "intended use",
            "What the model is intended for (reported in the submission checklist). Given on a "
            "registered model, it replaces the stored intended use, unless an open or locked "
            "study pins the model (then it is frozen).",
        )
        use.add_argument("--intended-use", help="the clinical task, in a sentence or two")
        use.add_argument("--target-population", help="patients the model is intended for")
        use.add_argument("--modality", help="imaging modality and view, e.g. 'CR/DX chest PA'")
        use.add_argument("--clinical-setting", help="where it is used")
        use.add_argument("--intended-users", help="who uses its output")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model, created = register_model(
                name=options["name"],
                version=options["version"],
                path=options["path"],
                fmt=options["fmt"],
                spec=read_spec_file(options["spec"]),
                factory=options["factory"],
                reason="manage.py register_model",
            )
        except RegistrationError as error:
            raise CommandError(str(error)) from None
        given = {f: options[f] for f in FIELDS if options[f] is not None}
        if given:
            try:
                changed = set_intended_use(
                    model=model,
                    value=replace(IntendedUse.of(model), **given),
                    actor=None,
                    reason="manage.py register_model",
                )
            except IntendedUseFrozenError as error:
                raise CommandError(str(error)) from None
            if changed:
                self.stdout.write(f"Intended use of {model.name} {model.version} stored.")
        verb = "Registered" if created else "Already registered:"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {model.name} {model.version} ({model.format}, findings "
                f"{', '.join(model.finding_codes)}), sha256 {model.sha256}"
            )
        )
