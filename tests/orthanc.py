"""A private Orthanc (with its DICOMweb plugin) for tests: free ports, temporary storage.

Off CI a machine without Debian's ``orthanc`` and ``orthanc-dicomweb`` packages skips the tests
that need it; in CI (CI=true) it fails them, and ``.ci/run`` installs both packages.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.services import IN_CI, stop_process_group

# Where Debian's orthanc-dicomweb puts the plugin (dpkg -L orthanc-dicomweb).
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
USERNAME = "archive"
PASSWORD = "archive-secret"


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its REST root, its DICOMweb root and the credentials it wants."""

    url: str
    auth: tuple[str, str]
    log: Path

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, data: bytes) -> None:
        """Store one DICOM file through the REST API (``POST /instances``)."""
        response = requests.post(f"{self.url}/instances", data=data, auth=self.auth, timeout=30)
        response.raise_for_status()

    def clear(self) -> None:
        """Delete every patient, so that each test sees only the studies it uploads."""
        listed = requests.get(f"{self.url}/patients", auth=self.auth, timeout=30)
        listed.raise_for_status()
        for patient in listed.json():
            requests.delete(f"{self.url}/patients/{patient}", auth=self.auth, timeout=30)


def _missing(what: str) -> None:
    message = f"{what} (apt-get install orthanc orthanc-dicomweb)"
    if IN_CI:
        pytest.fail(f"{message}; .ci/run installs both packages")
    pytest.skip(message)


def _plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = sorted(folder.glob("libOrthancDicomWeb.so*")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_orthanc(folder: Path) -> Iterator[Orthanc]:
    """Start Orthanc in ``folder``, wait until it answers, stop it (and its storage) after."""
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
    if binary is None:
        _missing("Orthanc is not installed")
    plugin = _plugin()
    if plugin is None:
        _missing("the Orthanc DICOMweb plugin is not installed")
    port = _free_port()
    storage = folder / "storage"
    storage.mkdir(parents=True)
    config = {
        "Name": "studyplatform-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": _free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: PASSWORD},
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "StableAge": 1,
        "SaveJobs": False,
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = folder / "orthanc.log"
    server = Orthanc(url=f"http://127.0.0.1:{port}", auth=(USERNAME, PASSWORD), log=log)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(binary), str(config_path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(server, process)
            yield server
        finally:
            stop_process_group(process)


def _wait_until_up(server: Orthanc, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Orthanc exited with {process.returncode}:\n{server.log.read_text()}")
        try:
            answer = requests.get(f"{server.url}/system", auth=server.auth, timeout=2)
            plugins = requests.get(f"{server.url}/plugins", auth=server.auth, timeout=2)
            if answer.ok and plugins.ok and "dicom-web" in plugins.json():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"Orthanc did not answer within 30 s:\n{server.log.read_text()}")
