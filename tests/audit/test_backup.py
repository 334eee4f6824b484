"""Backup and restore: a round trip into a new, empty database and MEDIA_ROOT keeps everything."""

from __future__ import annotations

import json
import shutil
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
