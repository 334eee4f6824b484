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
        "Deterministic given --seed on one machine; a few minutes on a CPU. With --ct, the CT "
        "demo model instead: a slice-wise (2.5-D) nodule detector trained on chest CT phantoms "
        "(about two minutes on a CPU); prints its held-out per-case AUC."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ct", action="store_true", help="Train the CT demo model.")
        parser.add_argument("--seed", type=int, default=0, help="Training seed (default 0).")
        parser.add_argument(
            "--out",
            type=Path,
            default=None,
            help="Folder for weights.pt and spec.json (default: the shipped model's folder).",
        )
        parser.add_argument(
            "--train", type=int, default=None, help="Training phantoms (default 2000; CT 120)."
        )
        parser.add_argument(
            "--held-out", type=int, default=None, help="Held-out phantoms (default 400; CT 60)."
        )
        parser.add_argument("--epochs", type=int, default=None, help="Default 14; CT 8.")

    def handle(self, *args: Any, **options: Any) -> None:
        import torch

        from studyplatform.prereads.demo_model.training import train

        # A fixed thread count: float sums are then ordered the same on every run.
        torch.set_num_threads(1)
        if options["ct"]:
            self._train_ct(options)
            return
        report = train(
            out_dir=options["out"] or demo_model.HERE,
            seed=options["seed"],
            n_train=options["train"] or 2000,
            n_held_out=options["held_out"] or 400,
            epochs=options["epochs"] or 14,
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

    def _train_ct(self, options: dict[str, Any]) -> None:
        from studyplatform.prereads import demo_model_ct
        from studyplatform.prereads.demo_model_ct.training import train

        report = train(
            out_dir=options["out"] or demo_model_ct.HERE,
            seed=options["seed"],
            n_train=options["train"] or 120,
            n_held_out=options["held_out"] or 60,
            epochs=options["epochs"] or 8,
            log=lambda line: self.stderr.write(line),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {report.weights} ({report.weights.stat().st_size // 1024} KiB) and "
                f"{report.spec} in {report.seconds:.0f} s."
            )
        )
        self.stdout.write(
            f"Held-out per-case AUC (case probability = maximum over slices) on "
            f"{report.n_held_out} new CT phantoms: {report.held_out_auc:.3f}"
        )
