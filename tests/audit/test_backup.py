"""Backup and restore: a round trip into a new, empty database and MEDIA_ROOT keeps everything."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection

from studyplatform.audit.services import record
from tests.factories import StudyFactory, TruthFactory, UserFactory
from tests.services import current_database_url, manage, service_env

COUNTS = (
    "from django.core.management import call_command; call_command('verify_audit'); "
    "import json; from studyplatform.studies.models import Study, Truth; "
    "from studyplatform.audit.models import AuditEvent; from django.conf import settings; "
    "from pathlib import Path; print(json.dumps({'studies': sorted(Study.objects.values_list("
    "'slug', flat=True)), 'truths': Truth.objects.count(), 'events': AuditEvent.objects.count(), "
    "'file': (Path(settings.MEDIA_ROOT) / 'studies/1/a.dcm').read_bytes().hex()}))"
)


def _trial_data():
    """Three audit events: the account's creation, an import and an export."""
    user = UserFactory(username="coord")
    truth = TruthFactory(case__study=StudyFactory(slug="trial-1"))
    default_storage.save("studies/1/a.dcm", ContentFile(b"\x00DICM\xff"))
    record(actor=user, action="truth.import", obj=truth, after={"rows": 1})
    record(actor=None, action="export.create", object_type="export", object_id="long")


@pytest.fixture
def empty_database_url():
    """A new, empty database of the same kind as the test database; dropped afterwards."""
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"]).with_suffix(".restore.sqlite3")
        path.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        path.unlink(missing_ok=True)
        return
    name = f"{connection.settings_dict['NAME']}_restore"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield current_database_url().rsplit("/", 1)[0] + f"/{name}"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_backup_then_restore_into_an_empty_database_keeps_data_files_and_audit_chain(
    tmp_path, settings, empty_database_url
):
    _trial_data()
    backup = tmp_path / "backup"
    call_command("backup", "--out", str(backup))
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["audit_head"]["sequence"] == 3 and manifest["media"]["files"] == 1
    assert manifest["migrations"]["audit"] == "0004_protocol_amendment_signatures"
    shutil.rmtree(settings.MEDIA_ROOT)  # the original files are gone

    env = service_env(
        tmp_path / "var", DATABASE_URL=empty_database_url, MEDIA_ROOT=str(tmp_path / "restored")
    )
    out = manage(env, "restore", "--from", str(backup))
    assert "1 media files; audit chain intact: 3 events" in out
    checked = manage(env, "shell", "-c", COUNTS).strip().splitlines()
    assert "audit chain intact: 3 events" in checked[-2]  # verify_audit in the restored database
    restored = json.loads(checked[-1])
    assert restored == {"studies": ["trial-1"], "truths": 1, "events": 3, "file": "004449434dff"}


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_damaged_backup_and_a_database_that_is_not_empty(tmp_path, settings):
    _trial_data()
    backup = tmp_path / "backup"
    call_command("backup", "--out", str(backup))
    with pytest.raises(CommandError, match="not empty: a backup goes into a new folder"):
        call_command("backup", "--out", str(backup))
    with pytest.raises(CommandError, match=r"database .* is not empty \(\d+ tables\)"):
        call_command("restore", "--from", str(backup))
    (backup / "media.tar.gz").write_bytes(b"tampered")
    with pytest.raises(CommandError, match=r"media part .* does not match its sha256"):
        call_command("restore", "--from", str(backup))


def _backup(tmp_path: Path) -> Path:
    _trial_data()
    backup = tmp_path / "backup"
    call_command("backup", "--out", str(backup))
    return backup


def _rewrite(backup: Path, change) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    change(manifest)
    (backup / "manifest.json").write_text(json.dumps(manifest))


def _replace_part(backup: Path, part: str, data: bytes) -> None:
    """Put crafted bytes in a part and record their true sha256, so only the content is wrong."""
    manifest = json.loads((backup / "manifest.json").read_text())
    (backup / manifest[part]["file"]).write_bytes(data)
    manifest[part]["sha256"] = hashlib.sha256(data).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest))


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _assert_one_line_refusal(backup: Path, pattern: str) -> None:
    with pytest.raises(CommandError, match=pattern) as refused:
        call_command("restore", "--from", str(backup))
    assert "\n" not in str(refused.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda m: m.pop("audit_head"), "'audit_head' must hold an integer sequence"),
        (lambda m: m.update(database="database.dump"), "'database' must name its file"),
        (lambda m: m["media"].update(file="../media.tar.gz"), "is not a file name"),
        (lambda m: m.update(vendor="oracle"), "unknown database vendor 'oracle'"),
        (lambda m: m["media"].update(file_sha256=["a.dcm"]), "must map file names to digests"),
    ],
)
def test_restore_refuses_a_malformed_manifest_in_one_line(tmp_path, settings, change, pattern):
    backup = _backup(tmp_path)
    _rewrite(backup, change)

    _assert_one_line_refusal(backup, pattern)


@pytest.mark.django_db
def test_restore_refuses_a_manifest_that_is_not_a_json_object(tmp_path, settings):
    backup = _backup(tmp_path)
    (backup / "manifest.json").write_text("[1, 2]")

    _assert_one_line_refusal(backup, "is not a JSON object")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["../escaped.dcm", "/tmp/absolute.dcm", "studies/../../up.dcm"])
def test_restore_refuses_a_media_member_outside_media_root_and_writes_nothing(
    tmp_path, settings, name
):
    backup = _backup(tmp_path)
    media_root = Path(settings.MEDIA_ROOT)
    _replace_part(backup, "media", _tar({"studies/1/a.dcm": b"\x00DICM\xff", name: b"evil"}))
    before = sorted(p.name for p in media_root.parent.iterdir())

    _assert_one_line_refusal(backup, "member outside MEDIA_ROOT")

    assert not (media_root.parent / "escaped.dcm").exists()
    assert not (media_root.parent.parent / "up.dcm").exists()
    assert sorted(p.name for p in media_root.parent.iterdir()) == before  # no staging left


@pytest.mark.django_db
def test_restore_refuses_a_media_file_whose_sha256_differs_from_the_manifest(tmp_path, settings):
    backup = _backup(tmp_path)
    _replace_part(backup, "media", _tar({"studies/1/a.dcm": b"\x00DICM\xfe"}))

    _assert_one_line_refusal(backup, r"media file 'studies/1/a.dcm' does not match its sha256")


@pytest.mark.django_db
def test_restore_refuses_a_media_archive_with_files_the_manifest_does_not_list(tmp_path, settings):
    backup = _backup(tmp_path)
    _replace_part(backup, "media", _tar({"studies/1/a.dcm": b"\x00DICM\xff", "extra.dcm": b"more"}))

    _assert_one_line_refusal(backup, "list different files \\('extra.dcm'\\)")


@pytest.mark.django_db(transaction=True)
def test_restore_of_a_dump_that_fails_to_load_changes_neither_database_nor_media(
    tmp_path, settings, empty_database_url
):
    backup = _backup(tmp_path)
    dump = backup / json.loads((backup / "manifest.json").read_text())["database"]["file"]
    # A real dump cut short: the first statements load, then the file ends.
    _replace_part(backup, "database", dump.read_bytes()[: dump.stat().st_size // 2])
    restored = tmp_path / "restored"
    env = service_env(tmp_path / "var", DATABASE_URL=empty_database_url, MEDIA_ROOT=str(restored))

    with pytest.raises(AssertionError, match="the database restore failed") as refused:
        manage(env, "restore", "--from", str(backup))

    message = [line for line in str(refused.value).splitlines() if "CommandError" in line]
    assert len(message) == 1, str(refused.value)
    tables = manage(
        env, "shell", "-c",
        "from django.db import connection; print(len(connection.introspection.table_names()))",
    )  # fmt: skip
    assert tables.strip().splitlines()[-1] == "0"  # not even the tables before the cut
    assert not restored.exists()
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []
