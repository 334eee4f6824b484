"""STOW-RS takes a whole study in one request without holding it in memory.

The body is spooled to a temporary file a chunk at a time (chunked transfer encoding included, as
routers send it), its parts are found by a streaming scan, and the case import reads each
instance's bytes only when it comes to it. Past STOW_MAX_REQUEST_MB the request is refused with
413 and leaves neither a file nor a case. The chunked requests go to gunicorn (Django's test
server does not de-chunk a request body), started on the test database.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from studyplatform.studies.models import Case, ImportRefusal
from studyplatform.studies.services import issue_site_token
from tests.dicomweb.test_stow import CONTENT_TYPE, _body, _post
from tests.factories import SiteFactory, StudyFactory
from tests.services import ROOT, current_database_url, service_env, stop_process_group
from tests.studies.volume_fixtures import ct_series

STUDY_UID = "1.2.826.0.1.3680043.8.498.79.1"


@pytest.fixture
def study(db):
    return StudyFactory(slug="thin")


@pytest.fixture
def token(study):
    return issue_site_token(study=study, site=SiteFactory(code="north"), name="router")


def _slices(count: int, *, size: int, study_uid: str = STUDY_UID) -> list[bytes]:
    return ct_series(count, study_uid=study_uid, series_uid=f"{study_uid}.2", size=size)


def _spooled(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.django_db
def test_a_request_past_the_limit_gets_413_and_leaves_no_file_and_no_case(
    client, study, token, settings, tmp_path
):
    settings.STOW_MAX_REQUEST_SIZE = 2**20
    settings.FILE_UPLOAD_TEMP_DIR = spool = tmp_path / "spool"
    spool.mkdir()
    big = _body(*_slices(3, size=512))  # 1.5 MB

    response = _post(client, big, token=token)

    assert response.status_code == 413
    assert response.json() == {"error": "request larger than 1 MiB"}
    assert _spooled(spool) == []
    assert not Case.objects.exists() and not ImportRefusal.objects.exists()
    # Under the limit the same door stores the case, and the spooled body is gone afterwards.
    assert _post(client, _body(*_slices(3, size=256)), token=token).status_code == 200
    assert Case.objects.get().images.count() == 3
    assert _spooled(spool) == []


@pytest.mark.django_db
def test_an_instance_sent_without_its_preamble_is_stored(client, study, token):
    first, second = _slices(2, size=64)
    assert first[128:132] == b"DICM"

    response = _post(client, _body(first[132:], second), token=token)

    assert response.status_code == 200, response.content
    assert Case.objects.get().images.count() == 2


def _peak_storing(url: str, token: str, body: Path) -> int:
    """The Python heap's high-water mark (tracemalloc: every thread, numpy's buffers included)
    while the live server stores a body sent from a file (so the client holds none of it)."""
    tracemalloc.start()
    try:
        with body.open("rb") as data:
            response = requests.post(
                f"{url}/dicomweb/studies",
                data=data,
                headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE},
                timeout=120,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    return peak


@pytest.mark.django_db(transaction=True)
def test_the_peak_memory_of_a_stow_does_not_grow_with_the_body(live_server, study, token, tmp_path):
    # A first request loads the decoders and fills caches: not part of what is compared. Both
    # counts are past the five middle slices a series' window is computed from.
    bodies = {}
    for slices in (2, 16, 48):
        bodies[slices] = tmp_path / f"{slices}.body"
        uid = f"{STUDY_UID}.{slices}"
        bodies[slices].write_bytes(_body(*_slices(slices, size=256, study_uid=uid)))
    _peak_storing(live_server.url, token, bodies[2])

    small, large = (_peak_storing(live_server.url, token, bodies[n]) for n in (16, 48))

    # Holding the body (or its parts) in memory costs at least the body's size again: 4 MB
    # more for the larger request. Spooled, one instance at a time, it costs next to nothing.
    grown = bodies[48].stat().st_size - bodies[16].stat().st_size
    assert Case.objects.get(case_id=f"{STUDY_UID}.48").images.count() == 48
    assert large - small < grown / 8, (small, large, grown)


@dataclass(frozen=True)
class Server:
    url: str
    spool: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gunicorn(transactional_db, tmp_path: Path) -> Iterator[Server]:
    """gunicorn on the test database, a STOW limit of 1 MiB, its own temporary folder."""
    spool, worker = tmp_path / "spool", tmp_path / "worker"
    spool.mkdir()
    worker.mkdir()
    env = service_env(
        tmp_path / "var",
        DATABASE_URL=current_database_url(),
        STOW_MAX_REQUEST_MB="1",
        TMPDIR=str(spool),
        INTAKE_RATE_LIMIT="0",
    )
    port = _free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "studyplatform.wsgi:application"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-tmp-dir", str(worker)]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/health/", timeout=5)
                    break
                except requests.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
                    time.sleep(0.2)
            yield Server(f"http://127.0.0.1:{port}", spool)
        finally:
            stop_process_group(process)


def _chunked(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body in pieces: requests sends a generator with Transfer-Encoding: chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _stow_chunked(server: Server, token: str, body: bytes) -> requests.Response:
    return requests.post(
        f"{server.url}/dicomweb/studies",
        data=_chunked(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE},
        timeout=60,
    )


def test_a_chunked_stow_is_stored_and_one_past_the_limit_is_refused(gunicorn, study, token):
    stored = _body(*_slices(4, size=256))  # 0.5 MB

    answer = _stow_chunked(gunicorn, token, stored)

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["00081199"]["Value"]) == 4
    assert Case.objects.get(case_id=STUDY_UID).images.count() == 4
    # No Content-Length: the limit is counted while reading. A little over it, so that the
    # server has read the whole body when it answers (and the answer is not lost to a reset).
    too_large = _body(*_slices(9, size=256, study_uid=f"{STUDY_UID}.3"))
    assert 2**20 < len(too_large) < 2**20 + 2**19
    refused = _stow_chunked(gunicorn, token, too_large)
    assert refused.status_code == 413
    assert refused.json() == {"error": "request larger than 1 MiB"}
    assert list(Case.objects.values_list("case_id", flat=True)) == [STUDY_UID]
    assert _spooled(gunicorn.spool) == []


def test_a_study_sent_by_an_orthanc_router_is_stored_as_one_case(gunicorn, orthanc, study, token):
    for data in _slices(20, size=64):
        orthanc.upload(data)
    # The site router's DICOMweb server entry: our STOW-RS root with the site token.
    entry = {
        "Url": f"{gunicorn.url}/dicomweb/",
        "HttpHeaders": {"Authorization": f"Bearer {token}"},
    }
    requests.put(
        f"{orthanc.dicomweb}/servers/platform", json=entry, auth=orthanc.auth, timeout=30
    ).raise_for_status()
    [orthanc_study] = requests.get(f"{orthanc.url}/studies", auth=orthanc.auth, timeout=30).json()

    sent = requests.post(
        f"{orthanc.dicomweb}/servers/platform/stow",
        json={"Resources": [orthanc_study]},
        auth=orthanc.auth,
        timeout=120,
    )

    assert sent.status_code == 200, f"{sent.text}\n{orthanc.log.read_text()[-3000:]}"
    case = Case.objects.get()
    assert case.case_id == STUDY_UID and case.site.code == "north"
    assert case.images.count() == 20
    assert _spooled(gunicorn.spool) == []
