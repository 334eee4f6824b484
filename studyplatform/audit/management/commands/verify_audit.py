"""``manage.py verify_audit``: walk the audit chain; exit 1 naming the first bad event."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.audit.selectors import ChainHead, signature_problems, verify_chain
from studyplatform.audit.verification import signed_data_problems


def parse_head(value: str) -> ChainHead:
    match = re.fullmatch(r"(\d+):([0-9a-f]{64})", value.strip())
    if match is None:
        raise CommandError(f"--expect-head {value!r} is not SEQUENCE:SHA256 (as verify prints)")
    return ChainHead(int(match[1]), match[2])


class Command(BaseCommand):
    help = (
        "Check that no audit event was edited, deleted or reordered (every event's hash, its "
        "link to the previous event, the numbering), that every signature matches its event, "
        "and that the data of every locked study and every final truth still give the digest "
        "that was signed: each read against the audit event that recorded it (and none after "
        "the lock), the truth against the final-truth event, the allocation against its "
        "fingerprint. Exits 1 naming the first bad sequence, signature or record."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--expect-head",
            metavar="SEQUENCE:SHA256",
            help="A head recorded earlier (a backup manifest): also detects removed newest events.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        expected = parse_head(options["expect_head"]) if options["expect_head"] else None
        report = verify_chain(expected)
        if not report.ok:
            raise CommandError(
                f"audit chain broken at sequence {report.first_bad_sequence}: {report.problem} "
                f"({report.events} events before it are intact)"
            )
        problems = signature_problems()
        checked, data_problems = signed_data_problems()
        problems += data_problems
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write(
            f"audit chain intact: {report.events} events, head {report.head}; "
            f"{checked} signed data digest(s) recomputed and matching"
        )
