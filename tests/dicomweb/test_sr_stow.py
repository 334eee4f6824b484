"""``export --format sr --stow URL``: the DICOM export stored in an archive with STOW-RS (the
private Orthanc), found there by QIDO-RS, and a refused request reported with the files kept."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.core.management import CommandError, call_command

from studyplatform.audit.models import AuditEvent
from tests.dashboard.dicom_builders import build_dicom_study
from tests.orthanc import Orthanc

pytestmark = pytest.mark.django_db


def test_stow_stores_every_exported_file_in_the_archive(orthanc: Orthanc, settings, tmp_path):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = orthanc.auth
    build_dicom_study(tmp_path)
    out = tmp_path / "out"
    stdout = io.StringIO()
    call_command("export", "dcm", "--format", "sr", "-o", str(out), "--stow", orthanc.dicomweb,
                 stdout=stdout)  # fmt: skip
    rows = [r for r in csv.DictReader((out / "manifest.csv").open()) if r["file"]]
    assert f"stored {len(rows)} in {orthanc.dicomweb}" in stdout.getvalue()
    session = requests.Session()
    session.auth = orthanc.auth
    client = DICOMwebClient(orthanc.dicomweb, session=session)
    for study_uid in {r["study_uid"] for r in rows}:
        found = {
            i["00080018"]["Value"][0]
            for i in client.search_for_instances(study_instance_uid=study_uid)
        }
        assert found == {r["sop_uid"] for r in rows if r["study_uid"] == study_uid}
    # Sending again stores the same instances again: nothing new appears.
    call_command("export", "dcm", "--format", "sr", "-o", str(out), "--stow", orthanc.dicomweb,
                 stdout=io.StringIO())  # fmt: skip
    assert len(client.search_for_instances()) == len(rows)
    events = AuditEvent.objects.filter(action="study.export").order_by("sequence")
    assert [(e.after or {})["via"] for e in events] == ["cli", "stow", "cli", "stow"]
    assert (events[1].after or {}) == {"format": "sr", "via": "stow", "url": orthanc.dicomweb,
                                      "sent": len(rows)}  # fmt: skip


def test_a_refused_stow_says_why_and_keeps_the_files(orthanc: Orthanc, settings, tmp_path):
    settings.DICOMWEB_USERNAME, settings.DICOMWEB_PASSWORD = orthanc.auth[0], "wrong"
    build_dicom_study(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(CommandError, match="401 not authorized"):
        call_command("export", "dcm", "--format", "sr", "-o", str(out), "--stow",
                     orthanc.dicomweb)  # fmt: skip
    assert (out / "manifest.csv").exists()
    # The files written are an export on the record; the refused sending is not.
    [event] = AuditEvent.objects.filter(action="study.export")
    assert (event.after or {})["via"] == "cli"


def test_stow_is_only_for_the_dicom_export(tmp_path: Path):
    build_dicom_study(tmp_path)
    with pytest.raises(CommandError, match="--stow sends DICOM files"):
        call_command("export", "dcm", "--format", "long", "-o", str(tmp_path / "x.csv"),
                     "--stow", "http://127.0.0.1:1/dicom-web")  # fmt: skip
