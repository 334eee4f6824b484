"""Train the demo CNN on phantoms and write its weights and spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from studyplatform.prereads import demo_model


class Command(BaseCommand):
    help = (
        "Train the demo model (a small CNN for nodule, pneumothorax and effusion) on generated "
        "phantoms whose seeds the demo study never uses; prints the held-out AUC per finding. "
        "Deterministic given --seed on one machine; a few minutes on a CPU."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=0, help="Training seed (default 0).")
        parser.add_argument(
            "--out",
            type=Path,
            default=demo_model.HERE,
            help=f"Folder for weights.pt and spec.json (default: the shipped {demo_model.HERE}).",
        )
        parser.add_argument("--train", type=int, default=2000, help="Training phantoms.")
        parser.add_argument("--held-out", type=int, default=400, help="Held-out phantoms.")
        parser.add_argument("--epochs", type=int, default=14)

    def handle(self, *args: Any, **options: Any) -> None:
        import torch

        from studyplatform.prereads.demo_model.training import train

        # A fixed thread count: float sums are then ordered the same on every run.
        torch.set_num_threads(1)
        report = train(
            out_dir=options["out"],
            seed=options["seed"],
            n_train=options["train"],
            n_held_out=options["held_out"],
            epochs=options["epochs"],
            log=lambda line: self.stderr.write(line),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {report.weights} ({report.weights.stat().st_size // 1024} KiB) and "
                f"{report.spec} in {report.seconds:.0f} s."
            )
        )
        self.stdout.write(
            f"Held-out AUC on {report.n_held_out} new phantoms: "
            + ", ".join(f"{k} {v:.3f}" for k, v in report.held_out_auc.items())
        )
