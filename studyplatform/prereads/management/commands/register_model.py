"""Register an AI model: a file (or MONAI bundle directory) plus its spec."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.prereads.inference import FORMATS
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
        verb = "Registered" if created else "Already registered:"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {model.name} {model.version} ({model.format}, findings "
                f"{', '.join(model.finding_codes)}), sha256 {model.sha256}"
            )
        )
