"""Pre-read throughput: a real worker end to end versus a plain loop, and time per stage.

    .venv/bin/python benchmarks/bench_preread.py               # 96 cases of 512 x 512, CPU
    .venv/bin/python benchmarks/bench_preread.py --cases 200 --json

Everything runs in a temporary VAR_DIR (SQLite and the embedded broker unless DATABASE_URL and
CELERY_BROKER_URL are set). Cases are imported first (phantoms stored as 16-bit PNG, the viewer's
derivative, as the demo does); then:

* plain loop: in this process, read each displayed image, preprocess, and run the model forward
  and Grad-CAM in chunks of the same size as the worker's - the floor for any pipeline;
* end to end: a Celery worker (``-Q inference -c 1``, model already loaded by a warm-up batch)
  pre-reads the study from ``request_prereads`` until every result and heatmap is stored;
* stages: the same pre-reads run in this process (``run_prereads_now``), summed per stage.

The device is CUDA when present, the CPU otherwise (both sides pick it the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def _make_study(slug: str, n_cases: int, size: int) -> Any:
    from django.core.files.base import ContentFile

    from studyplatform.studies import imaging
    from studyplatform.studies.models import Case, FindingType, Image, Series, Site, Study
    from studyplatform.studies.phantoms import FINDING_NAMES, FINDING_TYPES, generate_phantom

    study = Study.objects.create(slug=slug, title=slug, seed=1)
    for order, code in enumerate(FINDING_TYPES, start=1):
        FindingType.objects.create(study=study, code=code, name=FINDING_NAMES[code], order=order)
    site, _ = Site.objects.get_or_create(code="bench", defaults={"name": "Bench"})
    for number in range(n_cases):
        findings = frozenset(f for j, f in enumerate(FINDING_TYPES) if (number >> j) & 1)
        phantom = generate_phantom(seed=4_000_000_000 + number, findings=findings, size=size)
        case = Case.objects.create(study=study, case_id=f"B{number:04d}", site=site, modality="CR")
        png = imaging.to_display_png16(phantom.pixels)
        image = Image(
            case=case, series=Series.objects.first_of(case),
            rows=size, columns=size, sha256="0" * 64, bits_stored=12,
            window_center=2000, window_width=3000,
        )  # fmt: skip
        image.original.save(f"{case.case_id}.png", ContentFile(png), save=False)
        image.display.save(f"{case.case_id}-display.png", ContentFile(png), save=False)
        image.save()
    return study


def _plain_loop(study: Any, model: Any, chunk: int) -> float:
    """Decode, preprocess, forward and Grad-CAM of every case, nothing stored: seconds."""
    import numpy as np
    import torch

    from studyplatform.prereads.gradcam import grad_cam
    from studyplatform.prereads.inference import cached_model, preprocess
    from studyplatform.prereads.spec import parse_spec
    from studyplatform.studies.imaging import read_png
    from studyplatform.studies.models import Image

    spec = parse_spec(model.spec)
    loaded = cached_model(
        key=model.pk, path=model.path, fmt=model.format, spec=spec,
        factory=model.factory, sha256=model.sha256,
    )  # fmt: skip
    paths = [im.display.path for im in Image.objects.filter(case__study=study).order_by("case")]
    started = time.perf_counter()
    for start in range(0, len(paths), chunk):
        xs = np.stack([preprocess(read_png(p), spec) for p in paths[start : start + chunk]])
        x = torch.from_numpy(xs).to(loaded.device).requires_grad_(True)
        logits, fmap = loaded.forward(x)
        torch.sigmoid(logits).detach().cpu().numpy()
        grad_cam(logits, fmap).cpu().numpy()
    return time.perf_counter() - started


def _worker_env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _wait_done(study: Any, timeout: float) -> None:
    from studyplatform.prereads.selectors import preread_progress

    deadline = time.monotonic() + timeout
    while not preread_progress(study).finished:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {preread_progress(study).as_dict()}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=96)
    parser.add_argument("--size", type=int, default=512, help="Image rows = columns.")
    parser.add_argument("--batch-size", type=int, help="Cases per message (the service default).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-preread-") as tmp:
        var_dir = Path(tmp)
        _setup(var_dir)
        import torch

        from studyplatform.prereads.inference import pick_device
        from studyplatform.prereads.registry import register_demo_model
        from studyplatform.prereads.runner import CPU_CHUNK, GPU_CHUNK
        from studyplatform.prereads.services import BATCH_SIZE, request_prereads, run_prereads_now

        args.batch_size = args.batch_size or BATCH_SIZE

        device = pick_device()
        chunk = GPU_CHUNK if device.type == "cuda" else CPU_CHUNK
        model = register_demo_model()
        t0 = time.perf_counter()
        warm = _make_study("warm-up", 4, args.size)
        timed = _make_study("timed", args.cases, args.size)
        staged = _make_study("staged", args.cases, args.size)
        import_s = time.perf_counter() - t0

        log = (var_dir / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studyplatform", "worker", "-Q", "inference",
             "-c", "1", "--pool", "prefork", "-l", "INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=_worker_env(var_dir), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            request_prereads(study=warm, model=model)  # the worker loads the model once here
            _wait_done(warm, 300)
            loop_before = _plain_loop(timed, model, chunk)
            started = time.perf_counter()
            request_prereads(study=timed, model=model, batch_size=args.batch_size)
            _wait_done(timed, 1800)
            end_to_end = time.perf_counter() - started
            loop_after = _plain_loop(timed, model, chunk)
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(timeout=30)
            log.close()
        t0 = time.perf_counter()
        outcome = run_prereads_now(study=staged, model=model, batch_size=args.batch_size)
        in_process = time.perf_counter() - t0

        from studyplatform.prereads.models import PreRead

        done = PreRead.objects.filter(case__study=timed, status="done").count()
        loop = min(loop_before, loop_after)
        result = {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "cases": args.cases,
            "image_size": args.size,
            "chunk": chunk,
            "batch_size": args.batch_size,
            "import_s": round(import_s, 2),
            "plain_loop_s": [round(loop_before, 3), round(loop_after, 3)],
            "end_to_end_s": round(end_to_end, 3),
            "end_to_end_done": done,
            "plain_loop_cases_per_s": round(args.cases / loop, 2),
            "end_to_end_cases_per_s": round(args.cases / end_to_end, 2),
            "ratio": round(loop / end_to_end, 3),
            "in_process_s": round(in_process, 3),
            "stage_ms_per_case": {
                k: round(v / max(outcome.done, 1), 3) for k, v in outcome.stage_ms.items()
            },
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.cases} cases of {args.size}x{args.size} on {device} "
        f"({result['torch_threads']} torch threads), chunk {chunk}, batch {args.batch_size}"
    )
    print(f"plain loop (decode..Grad-CAM): {loop:.2f} s  {result['plain_loop_cases_per_s']}/s")
    print(
        f"end to end (worker, stored):   {end_to_end:.2f} s  "
        f"{result['end_to_end_cases_per_s']}/s  ({done} done)  ratio {result['ratio']:.0%}"
    )
    print(f"in process (run_prereads_now): {in_process:.2f} s")
    print("ms per case: " + "  ".join(f"{k} {v}" for k, v in result["stage_ms_per_case"].items()))


if __name__ == "__main__":
    main()
