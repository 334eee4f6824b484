"""Backup and restore of the whole platform: the database, the media files and a manifest.

A backup is a folder::

    database.dump | database.sqlite3   pg_dump custom format, or a SQLite online backup
    media.tar.gz                       every file under MEDIA_ROOT, names relative to it
    manifest.json                      sha256 and size of each part, the audit chain head,
                                       the applied migrations, when and from what it was made

``restore`` checks every part against the manifest, refuses a database or MEDIA_ROOT that is
not empty (restore into a new one, never over live data), restores, then verifies the audit
chain up to the head recorded in the manifest. docs/backup.md is the operator's guide.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from studyplatform.audit.selectors import ChainHead, chain_head, verify_chain

MANIFEST = "manifest.json"
MEDIA_ARCHIVE = "media.tar.gz"
FORMAT_VERSION = 1


class BackupError(Exception):
    """A backup or restore step failed; the message says which and why."""


@dataclass(frozen=True)
class RestoreSummary:
    database_file: str
    media_files: int
    audit_events: int
    audit_head: ChainHead


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def _pg_env(settings_dict: Mapping[str, Any]) -> dict[str, str]:
    """libpq's environment for the configured database: the password never goes on argv."""
    env = dict(os.environ)
    values = {
        "PGDATABASE": settings_dict.get("NAME"),
        "PGUSER": settings_dict.get("USER"),
        "PGPASSWORD": settings_dict.get("PASSWORD"),
        "PGHOST": settings_dict.get("HOST"),
        "PGPORT": settings_dict.get("PORT"),
        "PGSSLMODE": (settings_dict.get("OPTIONS") or {}).get("sslmode"),
    }
    env.update({key: str(value) for key, value in values.items() if value})
    return env


def _run_tool(args: list[str], env: dict[str, str], what: str) -> None:
    if shutil.which(args[0]) is None:
        raise BackupError(f"{args[0]} is not installed: {what} needs PostgreSQL's client tools")
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed ({args[0]} exit {result.returncode}): {result.stderr}")


def _applied_migrations() -> dict[str, str]:
    latest: dict[str, str] = {}
    for app, name in MigrationRecorder(connection).applied_migrations():
        latest[app] = max(latest.get(app, ""), name)
    return dict(sorted(latest.items()))


def _dump_database(out: Path) -> Path:
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        target = out / "database.dump"
        args = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"]
        _run_tool(args, _pg_env(settings_dict), "the database dump")
        return target
    if connection.vendor == "sqlite":
        target = out / "database.sqlite3"
        connection.ensure_connection()
        destination = sqlite3.connect(target)
        try:
            connection.connection.backup(destination)  # online: consistent while others write
        finally:
            destination.close()
        return target
    raise BackupError(f"backup does not know the {connection.vendor} database")


def _archive_media(out: Path) -> tuple[Path, int]:
    root = Path(settings.MEDIA_ROOT)
    target = out / MEDIA_ARCHIVE
    count = 0
    with tarfile.open(target, "w:gz") as archive:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    archive.add(path, arcname=str(path.relative_to(root)), recursive=False)
                    count += 1
    return target, count


def create_backup(out: Path) -> dict[str, Any]:
    """Write a backup into ``out`` (new or empty) and return its manifest."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: a backup goes into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    # Read before the dump: the dump holds at least this head (restore checks it).
    head = chain_head()
    database = _dump_database(out)
    media, media_files = _archive_media(out)
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "vendor": connection.vendor,
        "database": _part(database),
        "media": {**_part(media), "files": media_files},
        "audit_head": {"sequence": head.sequence, "hash": head.hash},
        "migrations": _applied_migrations(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest, after checking that every part is there with its recorded sha256."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{source / MANIFEST} cannot be read: {error}") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"{source} has backup format {manifest.get('format')!r}, not 1")
    for name in ("database", "media"):
        part = manifest[name]
        path = source / part["file"]
        if not path.is_file():
            raise BackupError(f"the {name} part {path} is missing")
        if sha256_file(path) != part["sha256"]:
            raise BackupError(f"the {name} part {path} does not match its sha256 in the manifest")
    return manifest


def _ensure_empty_database() -> None:
    tables = connection.introspection.table_names()
    if tables:
        raise BackupError(
            f"the database {connection.settings_dict['NAME']} is not empty ({len(tables)} "
            "tables): restore into a new, empty database"
        )


def _restore_database(path: Path, vendor: str) -> None:
    if vendor != connection.vendor:
        raise BackupError(f"the backup is of a {vendor} database; this one is {connection.vendor}")
    _ensure_empty_database()
    settings_dict = connection.settings_dict
    connection.close()
    if vendor == "postgresql":
        args = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
        args += [f"--dbname={settings_dict['NAME']}", str(path)]
        _run_tool(args, _pg_env(settings_dict), "the database restore")
    else:
        source = sqlite3.connect(path)
        destination = sqlite3.connect(settings_dict["NAME"])
        try:
            source.backup(destination)
        finally:
            source.close()
            destination.close()


def _restore_media(path: Path) -> int:
    root = Path(settings.MEDIA_ROOT)
    if root.exists() and any(root.iterdir()):
        raise BackupError(f"MEDIA_ROOT {root} is not empty: restore into an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        # The "data" filter refuses absolute names, "..", links and device files.
        archive.extractall(root, members=members, filter="data")
    return len(members)


def restore_backup(source: Path) -> RestoreSummary:
    """Restore a backup into an empty database and an empty MEDIA_ROOT, then verify it."""
    manifest = read_manifest(source)
    _ensure_empty_database()
    root = Path(settings.MEDIA_ROOT)
    if root.exists() and any(root.iterdir()):
        raise BackupError(f"MEDIA_ROOT {root} is not empty: restore into an empty folder")
    _restore_database(source / manifest["database"]["file"], manifest["vendor"])
    media_files = _restore_media(source / manifest["media"]["file"])
    expected = ChainHead(manifest["audit_head"]["sequence"], manifest["audit_head"]["hash"])
    report = verify_chain(expected)
    if not report.ok:
        raise BackupError(
            f"restored, but the audit chain is broken at sequence {report.first_bad_sequence}: "
            f"{report.problem}"
        )
    return RestoreSummary(manifest["database"]["file"], media_files, report.events, report.head)
