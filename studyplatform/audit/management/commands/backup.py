"""``manage.py backup --out DIR``: database, media files and a manifest with their sha256."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from studyplatform.audit.backup import BackupError, create_backup


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump, or SQLite's online backup) and every file under "
        "MEDIA_ROOT into a new folder, with a manifest of sha256 sums and the audit chain head."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="A new or empty folder.")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        try:
            manifest = create_backup(out)
        except BackupError as error:
            raise CommandError(str(error)) from None
        head = manifest["audit_head"]
        self.stdout.write(
            f"backup written to {out}: database {manifest['database']['bytes']} bytes, "
            f"{manifest['media']['files']} media files, audit head "
            f"{head['sequence']}:{head['hash']}"
        )
