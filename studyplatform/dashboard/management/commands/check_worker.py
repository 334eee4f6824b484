"""Send a diagnostic task through the broker and wait for a worker's answer."""

from __future__ import annotations

import json
import secrets
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.celery import DEFAULT_QUEUE, INFERENCE_QUEUE, diagnostic


class Command(BaseCommand):
    help = (
        "Round-trip a diagnostic task through the configured broker to a worker and back; "
        "prints the worker's pid, host and database. Exits non-zero if no worker answers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait.")
        parser.add_argument(
            "--queue", choices=[DEFAULT_QUEUE, INFERENCE_QUEUE], default=DEFAULT_QUEUE
        )
        parser.add_argument("--json", action="store_true", help="Print the answer as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        token = secrets.token_hex(8)
        result = diagnostic.apply_async(kwargs={"token": token}, queue=options["queue"])
        try:
            answer = result.get(timeout=options["timeout"])
        except CeleryTimeoutError:
            raise CommandError(
                f"no worker answered on queue {options['queue']!r} within {options['timeout']} s "
                f"(broker {settings.CELERY_BROKER_URL.split('@')[-1]}): is a worker running?"
            ) from None
        finally:
            result.forget()
        if answer.get("token") != token:
            raise CommandError(f"the worker answered with the wrong token: {answer!r}")
        if options["json"]:
            self.stdout.write(json.dumps(answer, sort_keys=True))
        else:
            self.stdout.write(
                f"worker pid {answer['pid']} on {answer['hostname']} answered on queue "
                f"{options['queue']!r}; database {answer['database']}, "
                f"{answer['studies']} studies visible"
            )
