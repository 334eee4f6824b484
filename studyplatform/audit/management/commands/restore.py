"""``manage.py restore --from DIR``: restore a backup into an empty database and MEDIA_ROOT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.audit.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = (
        "Restore a backup made by `backup`: checks every part's sha256, refuses a database or "
        "MEDIA_ROOT that is not empty, restores both, then verifies the audit chain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, type=Path, help="The backup folder."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = restore_backup(options["source"])
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"restored {summary.database_file} and {summary.media_files} media files; audit "
            f"chain intact: {summary.audit_events} events, head {summary.audit_head}"
        )
