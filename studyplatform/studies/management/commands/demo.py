"""Build (or rebuild) the demo study and print the demo accounts with their URLs."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.studies.demo import DEMO_SEED, DemoSummary, build_demo_study
from studyplatform.studies.demo_ct import build_demo_ct_study


class Command(BaseCommand):
    help = (
        "Build the demo study: ~60 synthetic chest-radiograph cases over 3 sites and 2 "
        "modalities, ground truth for 3 finding types, and one demo account per role. "
        "Running it again rebuilds the same study (idempotent). With --ct, also the CT demo "
        "study 'demo-ct': chest CT phantoms from two scanners with lung nodules, read with and "
        "without the CT demo model's slice-by-slice pre-read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cases", type=int, default=60, help="Number of cases (default 60).")
        parser.add_argument("--seed", type=int, default=DEMO_SEED, help="Seed for everything.")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000/", help="Server address for the URLs."
        )
        parser.add_argument(
            "--simulate-reads",
            action="store_true",
            help="Also fill in simulated reads of readers R02-R04 (both arms), for the dashboard.",
        )
        parser.add_argument(
            "--ct", action="store_true", help="Also build the CT demo study 'demo-ct'."
        )
        parser.add_argument(
            "--ct-cases", type=int, default=24, help="Cases of the CT demo (default 24)."
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Build it even with DEBUG off (the demo accounts have published passwords).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_production"]:
            raise CommandError(
                "refusing to create demo accounts with published passwords while DEBUG is off; "
                "pass --allow-production if this server is really a demo"
            )
        started = time.perf_counter()
        try:
            summary = build_demo_study(
                n_cases=options["cases"],
                seed=options["seed"],
                simulate_reads=options["simulate_reads"],
            )
            self._built(summary, started)
            if options["ct"]:
                started = time.perf_counter()
                self._built(
                    build_demo_ct_study(
                        n_cases=options["ct_cases"],
                        seed=options["seed"],
                        simulate_reads=options["simulate_reads"],
                    ),
                    started,
                )
        except ValueError as error:
            raise CommandError(str(error)) from None
        base = options["base_url"].rstrip("/")
        slugs = ["demo", "demo-ct"] if options["ct"] else ["demo"]
        self.stdout.write(f"\nOpen {base}/login/ and log in with one of these demo accounts:\n")
        for account in summary.accounts:
            where = {
                "coordinator": " and ".join(
                    [f"{base}/dashboard/{slug}/" for slug in slugs] + [f"{base}/admin/"]
                ),
                "statistician": " and ".join(f"{base}/dashboard/{slug}/report/" for slug in slugs),
            }.get(account.role, f"{base}/ (worklist)")
            self.stdout.write(
                f"  {account.role:<13} {account.username:<13} password {account.password:<20}"
                f" then {where}"
            )

    def _built(self, summary: DemoSummary, started: float) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo study {summary.study.slug!r}: {summary.cases} cases, {summary.images} "
                f"images, {summary.simulated_reads} simulated reads, built in "
                f"{time.perf_counter() - started:.1f} s."
            )
        )
