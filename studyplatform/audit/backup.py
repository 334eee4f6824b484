"""Backup and restore of the whole platform: the database, the media files and a manifest.

A backup is a folder::

    database.dump | database.sqlite3   pg_dump custom format, or a SQLite online backup
    media.tar.gz                       every file under MEDIA_ROOT, names relative to it
    manifest.json                      sha256 and size of each part, the audit chain head,
                                       the applied migrations, when and from what it was made

``restore`` checks the manifest and every part against it, refuses a database or MEDIA_ROOT
that is not empty (restore into a new one, never over live data), and changes nothing unless
everything loads: the media files are unpacked and checked into a folder beside MEDIA_ROOT, the
database is loaded in one transaction and its audit chain verified up to the head recorded in
the manifest, and only then do the files move into place (a database whose chain does not verify
is emptied again). docs/backup.md is the operator's guide.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        detail = lines[0] if lines else "no message"
        raise BackupError(f"{what} failed ({args[0]} exit {result.returncode}): {detail}")


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


def _archive_media(out: Path) -> tuple[Path, dict[str, str]]:
    """The media archive and the sha256 of each file in it, by name."""
    root = Path(settings.MEDIA_ROOT)
    target = out / MEDIA_ARCHIVE
    digests: dict[str, str] = {}
    with tarfile.open(target, "w:gz") as archive:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    name = path.relative_to(root).as_posix()
                    archive.add(path, arcname=name, recursive=False)
                    digests[name] = sha256_file(path)
    return target, digests


def create_backup(out: Path) -> dict[str, Any]:
    """Write a backup into ``out`` (new or empty) and return its manifest."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: a backup goes into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    # Read before the dump: the dump holds at least this head (restore checks it).
    head = chain_head()
    database = _dump_database(out)
    media, digests = _archive_media(out)
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "vendor": connection.vendor,
        "database": _part(database),
        "media": {**_part(media), "files": len(digests), "file_sha256": digests},
        "audit_head": {"sequence": head.sequence, "hash": head.hash},
        "migrations": _applied_migrations(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest, after checking that every part is there with its recorded sha256."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{source / MANIFEST} cannot be read: {error}") from None
    if not isinstance(manifest, dict):
        raise BackupError(f"{source / MANIFEST} is not a JSON object")
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"{source} has backup format {manifest.get('format')!r}, not 1")
    _check_manifest(manifest)
    for name in ("database", "media"):
        part = manifest[name]
        path = source / part["file"]
        if not path.is_file():
            raise BackupError(f"the {name} part {path} is missing")
        if sha256_file(path) != part["sha256"]:
            raise BackupError(f"the {name} part {path} does not match its sha256 in the manifest")
    return manifest


def _check_manifest(manifest: dict[str, Any]) -> None:
    """Every field restore relies on is there with the right type; part names are plain names."""
    if manifest.get("vendor") not in ("postgresql", "sqlite"):
        raise BackupError(f"manifest: unknown database vendor {manifest.get('vendor')!r}")
    for name in ("database", "media"):
        part = manifest.get(name)
        if not isinstance(part, dict) or not all(
            isinstance(part.get(key), str) for key in ("file", "sha256")
        ):
            raise BackupError(f"manifest: {name!r} must name its file and sha256")
        file = part["file"]
        if file in ("", ".", "..", MANIFEST) or "/" in file or "\\" in file:
            raise BackupError(f"manifest: the {name} part {file!r} is not a file name")
    head = manifest.get("audit_head")
    if not (
        isinstance(head, dict)
        and isinstance(head.get("sequence"), int)
        and isinstance(head.get("hash"), str)
    ):
        raise BackupError("manifest: 'audit_head' must hold an integer sequence and a hash")
    digests = manifest["media"].get("file_sha256")
    if digests is not None and not (
        isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())
    ):
        raise BackupError("manifest: media 'file_sha256' must map file names to digests")


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
        # One transaction: a dump that fails halfway leaves the database as empty as it was.
        args = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
        args += ["--single-transaction", f"--dbname={settings_dict['NAME']}", str(path)]
        _run_tool(args, _pg_env(settings_dict), "the database restore")
    else:
        # Copied beside the target and renamed over it: all of it or none of it.
        target = Path(settings_dict["NAME"])
        partial = target.with_name(f".{target.name}.restoring")
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            destination = sqlite3.connect(partial)
            try:
                source.execute("PRAGMA quick_check").fetchall()
                source.backup(destination)
            finally:
                source.close()
                destination.close()
            partial.replace(target)
        except sqlite3.Error as error:
            raise BackupError(f"the database restore failed: {error}") from None
        finally:
            partial.unlink(missing_ok=True)


def _empty_database() -> None:
    """Undo a restored database (it was empty before): drop every table it now has."""
    connection.close()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
        else:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's name, refused unless it is a regular file or folder strictly inside."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or "\\" in member.name or not name.parts:
        raise BackupError(f"the media archive has a member outside MEDIA_ROOT: {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise BackupError(f"the media archive has a link or special file: {member.name!r}")
    return name.as_posix()


def _unpack_media(path: Path, into: Path, digests: dict[str, str] | None) -> int:
    """Unpack the archive into ``into`` (a new folder), checking every name and file first."""
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
            for member in members:
                name = _member_name(member)
                if member.isfile():
                    seen.add(name)
            if digests is not None and seen != set(digests):
                odd = sorted(seen ^ set(digests))
                raise BackupError(
                    f"the media archive and the manifest list different files ({odd[0]!r})"
                )
            archive.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BackupError(f"the media archive cannot be unpacked: {error}") from None
    for name in sorted(seen):
        if digests is not None and sha256_file(into / name) != digests[name]:
            raise BackupError(f"the media file {name!r} does not match its sha256 in the manifest")
    return len(seen)


def _move_into_place(unpacked: Path, root: Path) -> None:
    if root.exists():
        root.rmdir()  # checked empty before anything was restored
    unpacked.replace(root)


def restore_backup(source: Path) -> RestoreSummary:
    """Restore a backup into an empty database and an empty MEDIA_ROOT, then verify it.

    Nothing changes unless all of it loads: the files wait in a folder beside MEDIA_ROOT until
    the database has committed and its audit chain verifies.
    """
    manifest = read_manifest(source)
    root = Path(settings.MEDIA_ROOT)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.restoring-", dir=root.parent))
    try:
        # The whole backup is checked before the target is looked at, let alone written.
        unpacked = staging / "media"
        unpacked.mkdir()
        media_files = _unpack_media(
            source / manifest["media"]["file"], unpacked, manifest["media"].get("file_sha256")
        )
        _ensure_empty_database()
        if root.exists() and any(root.iterdir()):
            raise BackupError(f"MEDIA_ROOT {root} is not empty: restore into an empty folder")
        _restore_database(source / manifest["database"]["file"], manifest["vendor"])
        expected = ChainHead(manifest["audit_head"]["sequence"], manifest["audit_head"]["hash"])
        try:
            report = verify_chain(expected)
        except Exception as error:  # a dump of something else: no audit table, other columns
            _empty_database()
            raise BackupError(f"the restored database cannot be verified: {error}") from None
        if not report.ok:
            _empty_database()
            raise BackupError(
                f"the audit chain of the backup is broken at sequence "
                f"{report.first_bad_sequence}: {report.problem}; nothing was restored"
            )
        _move_into_place(unpacked, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreSummary(manifest["database"]["file"], media_files, report.events, report.head)
