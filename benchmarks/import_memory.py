"""Peak memory of ``import_cases``, ``import_dicomweb`` and STOW-RS against the number of slices.

    .venv/bin/python benchmarks/import_memory.py                       # 2 x 50, then 2 x 300
    .venv/bin/python benchmarks/import_memory.py --slices 100 --sources files
    .venv/bin/python benchmarks/import_memory.py --slices 300 --sources stow

For each slice count N, one synthetic CT case of two axial series of N slices each (512 x 512,
16-bit, uncompressed: 0.5 MB a slice) is written to a temporary folder with its manifest, then
imported in a child process by ``manage.py import_cases``, twice (the first import, then the
rerun that finds the case stored). With ``dicomweb`` among the sources, the same files are
uploaded to a private Orthanc (``tests/orthanc.py``, Debian's ``orthanc`` and
``orthanc-dicomweb``) and imported by ``manage.py import_dicomweb``, twice. With ``stow`` among
the sources, the same files are sent as one STOW-RS request (``POST /dicomweb/studies``, with
``Transfer-Encoding: chunked`` as a router sends a study) to gunicorn (one sync worker) started
for the run, twice. Each run reports the child's wall time and its peak resident memory
(``ru_maxrss`` from ``os.wait4``: the high-water mark of the whole process, Django's start-up
included; for gunicorn, the larger of the master and its worker, which the master reaps).
Everything lives in a temporary VAR_DIR (SQLite unless DATABASE_URL is set).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(var_dir: Path) -> None:
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _slices(count: int, size: int, series: int) -> Iterator[tuple[str, bytes]]:
    """Every slice's file name and bytes, made one at a time (never a whole series held)."""
    from tests.studies.volume_fixtures import ct_slice

    study_uid = f"1.2.826.0.1.3680043.8.498.99.{count}"
    for number in range(1, series + 1):
        for index in range(count):
            data = ct_slice(
                index,
                study_uid=study_uid,
                series_uid=f"{study_uid}.{number}",
                series_number=number,
                size=size,
            )
            yield f"s{number}/{index:04d}.dcm", data


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and the last line of one command in a child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command[0]} failed:\n{text}\n{err.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024, text.strip().splitlines()[-1]


BOUNDARY = "benchmark-stow-boundary"


def _write_stow_body(path: Path, slices: list[Path]) -> None:
    """A multipart/related body of one instance per part, written file by file."""
    with path.open("wb") as body:
        for item in slices:
            body.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            body.write(item.read_bytes())
            body.write(b"\r\n")
        body.write(f"--{BOUNDARY}--\r\n".encode())


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as body:
        while chunk := body.read(1 << 20):
            yield chunk


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stow(body: Path, token: str, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, the server's peak resident MB and the answer of one STOW-RS request.

    A fresh gunicorn each time, so that its high-water mark is this request's.
    """
    import requests

    port = _free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "studyplatform.wsgi:application"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "3600"]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/health/", timeout=5)
                    break
                except requests.ConnectionError:
                    if server.poll() is not None:
                        log.seek(0)
                        raise SystemExit(f"gunicorn exited:\n{log.read().decode()}") from None
                    time.sleep(0.2)
            answer = requests.post(
                f"http://127.0.0.1:{port}/dicomweb/studies",
                data=_chunks(body),  # a generator: sent with Transfer-Encoding: chunked
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                    f"boundary={BOUNDARY}",
                },
                timeout=3600,
            )
        finally:
            server.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(server.pid, 0)
    elapsed = time.perf_counter() - started
    failed = answer.json().get("00081198", {}).get("Value", []) if answer.content else []
    summary = f"HTTP {answer.status_code}, {len(failed)} failed, {answer.text[:200]}"
    return elapsed, usage.ru_maxrss / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="50,300", help="comma-separated slices per series")
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--sources", default="files,dicomweb,stow", help="files, dicomweb and/or stow"
    )
    options = parser.parse_args()
    counts = [int(n) for n in options.slices.split(",")]
    sources = options.sources.split(",")

    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder) / "var"
        _setup(var_dir)
        from studyplatform.studies.models import Site, Study
        from studyplatform.studies.services import issue_site_token

        site, _ = Site.objects.get_or_create(code="bench", defaults={"name": "Bench"})
        env = {**os.environ, "VAR_DIR": str(var_dir)}
        print(
            "| source | slices | MB | run | process s | peak MB |\n|---|---|---|---|---|---|",
            flush=True,
        )
        orthanc_context = None
        orthanc = None
        if "dicomweb" in sources:
            from tests.orthanc import running_orthanc

            orthanc_context = running_orthanc(Path(folder) / "orthanc")
            orthanc = orthanc_context.__enter__()
            env |= {"DICOMWEB_USERNAME": orthanc.auth[0], "DICOMWEB_PASSWORD": orthanc.auth[1]}
        try:
            for count in counts:
                cases = Path(folder) / f"in-{count}"
                names, sent = [], 0
                for name, data in _slices(count, options.size, options.series):
                    (cases / name).parent.mkdir(parents=True, exist_ok=True)
                    (cases / name).write_bytes(data)
                    names.append(name)
                    sent += len(data)
                    if orthanc is not None:
                        orthanc.upload(data)
                (cases / "manifest.csv").write_text(
                    f"case_id,site,images\nM-{count},bench,{';'.join(names)}\n"
                )
                total = count * options.series
                for source in sources:
                    slug = f"{source}-{count}"
                    Study.objects.get_or_create(slug=slug, defaults={"title": slug, "seed": 1})
                    if source == "stow":
                        study = Study.objects.get(slug=slug)
                        token = issue_site_token(study=study, site=site, name="benchmark")
                        body = Path(folder) / f"stow-{count}.bin"
                        _write_stow_body(body, [cases / name for name in names])
                    if source == "files":
                        command = ["import_cases", slug, str(cases)]
                    elif source == "dicomweb":
                        assert orthanc is not None
                        command = ["import_dicomweb", slug, "--url", orthanc.dicomweb]
                        command += ["--site", "bench", "--case-id-from", "study-uid"]
                    for run in ("first", "rerun"):
                        if source == "stow":
                            wall, peak, summary = _stow(body, token, env)
                        else:
                            wall, peak, summary = _run(command, env)
                        print(
                            f"| {source} | {options.series} x {count} = {total} | "
                            f"{sent / 2**20:.0f} | {run} | {wall:.1f} | {peak:.0f} |",
                            flush=True,
                        )
                        print(f"<!-- {summary} -->", file=sys.stderr, flush=True)
                if orthanc is not None:
                    orthanc.clear()
        finally:
            if orthanc_context is not None:
                orthanc_context.__exit__(None, None, None)


if __name__ == "__main__":
    main()
