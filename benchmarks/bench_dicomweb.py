"""``manage.py import_dicomweb`` from a real Orthanc: throughput, rerun cost and peak memory.

    .venv/bin/python benchmarks/bench_dicomweb.py                  # 2 studies of 50 and 200 slices
    .venv/bin/python benchmarks/bench_dicomweb.py --studies 4 --slices 100 --size 512

Needs Debian's ``orthanc`` and ``orthanc-dicomweb``: a private Orthanc is started on free ports
(``tests/orthanc.py``). For each slice count, ``--studies`` synthetic CT studies of that many
512 x 512 16-bit slices are uploaded through Orthanc's REST API, then ``import_dicomweb`` runs
twice as a child process (first import, then the rerun that finds everything stored). Each run
reports the process's wall time, the command's own time (its summary line, without Django's
start-up), slices per second of the latter, and peak resident memory (the child's
``ru_maxrss`` from ``os.wait4``).
Everything lives in a temporary VAR_DIR (SQLite unless DATABASE_URL is set).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def _ct_study(slices: int, size: int, seed: int) -> list[bytes]:
    from pydicom.uid import generate_uid

    from tests.dicomweb.builders import encode, synthetic_study

    study = synthetic_study(modality="CT", images=1, accession=f"B{seed:05d}", seed=seed)
    template = study.instances[0]
    rng = np.random.default_rng(seed)
    encoded = []
    for number in range(1, slices + 1):
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = number
        template.Rows = template.Columns = size
        template.PixelData = rng.integers(0, 4096, (size, size), dtype=np.uint16).tobytes()
        encoded.append(encode(template))
    return encoded


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and the summary line of one import in a child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "import_dicomweb", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"import_dicomweb failed:\n{text}\n{err.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024, text.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--slices", default="50,200", help="comma-separated slice counts")
    parser.add_argument("--size", type=int, default=512)
    options = parser.parse_args()
    counts = [int(n) for n in options.slices.split(",")]

    from tests.orthanc import running_orthanc

    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder) / "var"
        _setup(var_dir)
        from studyplatform.studies.models import Site, Study

        Site.objects.get_or_create(code="bench", defaults={"name": "Bench"})
        with running_orthanc(Path(folder) / "orthanc") as orthanc:
            env = {
                **os.environ,
                "VAR_DIR": str(var_dir),
                "DICOMWEB_USERNAME": orthanc.auth[0],
                "DICOMWEB_PASSWORD": orthanc.auth[1],
            }
            print(
                "| slices x studies | MB sent | run | process s | import s | slices/s | peak MB |\n"
                "|---|---|---|---|---|---|---|"
            )
            for slices in counts:
                orthanc.clear()
                slug = f"bench-{slices}"
                Study.objects.get_or_create(slug=slug, defaults={"title": slug, "seed": 1})
                sent = 0
                for number in range(options.studies):
                    for data in _ct_study(slices, options.size, seed=slices * 100 + number):
                        orthanc.upload(data)
                        sent += len(data)
                args = [slug, "--url", orthanc.dicomweb, "--site", "bench"]
                for run in ("first", "rerun"):
                    wall, peak, summary = _run(args, env)
                    total = slices * options.studies
                    # The command's own time (its summary line): the process adds Django's start.
                    own = float(summary.rsplit(" in ", 1)[1].removesuffix(" s."))
                    print(
                        f"| {slices} x {options.studies} | {sent / 2**20:.0f} | {run} | "
                        f"{wall:.1f} | {own:.1f} | {total / own:.0f} | {peak:.0f} |"
                    )
                    print(f"<!-- {summary} -->", file=sys.stderr)


if __name__ == "__main__":
    main()
