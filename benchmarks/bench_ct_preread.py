"""Time of a CT pre-read with the CT demo model: one case, every slice, on the CPU (or CUDA).

    .venv/bin/python benchmarks/bench_ct_preread.py                      # 64 slices of 128 x 128
    .venv/bin/python benchmarks/bench_ct_preread.py --size 512 --slices 300 --threads 4

A chest CT phantom is drawn, its slices encoded as the 16-bit PNG derivatives the import stores
(HU + 1024), then timed as the runner does them for one case: decoding the PNGs, then
``run_slices`` (stack normalization, the 2.5-D inputs, forward and Grad-CAM in batches of
``CPU_SLICES`` slices, the per-slice heatmaps stacked and encoded). No database: the stages
the database adds (reading the slices' rows, one commit) are the runner's, measured in
``bench_preread.py``. Prints the median of ``--repeat`` runs per stage, in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")
os.environ.setdefault("DEBUG", "true")
django.setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from studyplatform.prereads import demo_model_ct  # noqa: E402
from studyplatform.prereads.inference import load_model, pick_device  # noqa: E402
from studyplatform.prereads.runner_slices import run_slices  # noqa: E402
from studyplatform.prereads.spec import parse_spec  # noqa: E402
from studyplatform.studies import imaging  # noqa: E402
from studyplatform.studies.phantoms_ct import generate_ct_phantom  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = parse_spec(demo_model_ct.spec())
    loaded = load_model(
        path=demo_model_ct.WEIGHTS,
        fmt="factory",
        spec=spec,
        factory=demo_model_ct.FACTORY,
        device=pick_device(),
    )
    started = time.perf_counter()
    phantom = generate_ct_phantom(seed=1, n_nodules=2, vendor=1, size=args.size, slices=args.slices)
    drawn = time.perf_counter() - started
    pngs = [
        imaging.to_display_png16((s.astype(np.int32) + 1024).astype(np.uint16))
        for s in phantom.volume
    ]
    runs: list[dict[str, float]] = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        stack = np.stack(
            [np.asarray(Image.open(io.BytesIO(p)), dtype=np.float32) - 1024 for p in pngs]
        )
        decode = (time.perf_counter() - t0) * 1000
        result = run_slices(loaded, stack, shown=[0])
        total = (time.perf_counter() - t0) * 1000
        runs.append({"decode": decode, **result.timings, "total": total})
    median = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    report = {
        "device": loaded.device.type,
        "threads": torch.get_num_threads(),
        "size": args.size,
        "slices": args.slices,
        "phantom_s": round(drawn, 2),
        "median_ms": median,
        "per_slice_ms": round(median["total"] / args.slices, 2),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"{args.slices} slices of {args.size} x {args.size} on {report['device']} "
        f"({report['threads']} threads); phantom drawn in {drawn:.2f} s"
    )
    for stage, ms in median.items():
        print(f"  {stage:<10} {ms:>9.1f} ms")
    print(f"  per slice  {report['per_slice_ms']:>9.2f} ms")


if __name__ == "__main__":
    main()
