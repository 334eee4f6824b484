"""The CT viewer's speed: time to the first slice on screen, scroll frame rate, server memory.

Builds (in a flushed database, by default ``volumes_bench`` on 127.0.0.1) a study with one CT
case of 300 slices of 512 x 512 (a water cylinder in air with a moving bone rod and 20 HU of
noise, so that the 16-bit PNG derivatives are as large as a real scan's), starts gunicorn in
production settings (one worker process, four threads), and measures:

- server memory: the RSS of the gunicorn processes, sampled every 20 ms, while a client fetches
  all 300 slices (one after the other, then four at a time) and while the browser reads;
- time to the first slice: in headless Chromium (fresh profile, nothing cached), from the
  navigation's start (``performance.timeOrigin``) to the animation frame that drew slice 1;
- scroll frame rate: a wheel event every animation frame from slice 1 to 300, recording each
  frame's ``requestAnimationFrame`` timestamp and the slice drawn, right after the first slice
  appears (prefetch still running: "cold") and once every slice is decoded ("warm"); and cold
  again at a reader's pace, a wheel event every third frame ("paced").

Usage::

    .venv/bin/python benchmarks/ct_viewer.py [--slices 300] [--size 512] [--runs 3]
        [--database-url postgres://postgres@127.0.0.1:5432/volumes_bench]

Target: the first slice fast, scrolling at >= 30 frames a second, server memory flat.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_reading import PASSWORD, Client
from browser_bench import (
    VIEWPORT,
    arguments,
    chromium_options,
    gunicorn,
    open_reading_page,
    prepared_environment,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCROLL = """async (every) => {
  const canvas = document.querySelector('#viewer');
  const n = readingViewer.state().slices;
  readingViewer.showSlice(1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return await new Promise((resolve) => {
    const frames = [];
    let requested = 1;
    let frame = 0;
    function tick(t) {
      frames.push([t, Number(canvas.dataset.slice), requested]);
      if (requested < n && frame++ % every !== 0) {
        requestAnimationFrame(tick);
      } else if (requested < n) {
        requested++;
        const wheel = {deltaY: 100, bubbles: true, cancelable: true};
        canvas.dispatchEvent(new WheelEvent('wheel', wheel));
        requestAnimationFrame(tick);
      } else if (Number(canvas.dataset.slice) !== n && frames.length < 20000) {
        requestAnimationFrame(tick);
      } else {
        resolve(frames);
      }
    }
    requestAnimationFrame(tick);
  });
}"""


def build(slices: int, size: int) -> str:
    """Flush the database, build the study; return the reader's first assignment's URL."""
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from studyplatform.prereads.models import AIModel
    from studyplatform.reading.models import Assignment, Enrolment, Reader
    from studyplatform.reading.services import open_study, randomize_study
    from studyplatform.studies import imaging
    from studyplatform.studies.models import (
        Arm,
        Case,
        FindingType,
        Image,
        Series,
        Site,
        Study,
        Truth,
    )
    from tests.studies.volume_fixtures import phantom_slice

    call_command("flush", "--noinput", verbosity=0)
    model = AIModel.objects.create(
        name="bench", version="1", format="torchscript", path="-", sha256="0" * 64,
        finding_codes=["nodule"],
    )  # fmt: skip
    study = Study.objects.create(
        slug="ctbench", title="CT viewer", seed=7, ai_model_name=model.name,
        ai_model_version=model.version, ai_model_sha256=model.sha256,
    )  # fmt: skip
    Arm.objects.create(study=study, name="unassisted", label="Unassisted", order=1)
    Arm.objects.create(study=study, name="assisted", label="AI-assisted", shows_ai=True, order=2)
    finding = FindingType.objects.create(study=study, code="nodule", name="Nodule", order=1)
    site = Site.objects.create(code="ct-site", name="CT site")
    rng = np.random.default_rng(11)
    total = 0
    for number in range(2):
        case = Case.objects.create(study=study, case_id=f"CT{number}", site=site, modality="CT")
        Truth.objects.create(
            case=case, finding_type=finding, present=bool(number), source="synthetic"
        )
        series = Series.objects.create(
            case=case, position=1, modality="CT", slice_spacing=1.0, slice_thickness=1.0,
            normal=[0.0, 0.0, 1.0], pixel_spacing=[0.7, 0.7], ordered_by="position",
        )  # fmt: skip
        for index in range(slices):
            hu = phantom_slice(index % (size - 8), size).astype(np.int32)
            hu += np.rint(rng.normal(0, 20, hu.shape)).astype(np.int32)
            png = imaging.to_display_png16((hu + 1100).astype(np.uint16))
            total += len(png)
            image = Image(
                case=case, series=series, position=index + 1, slice_number=index + 1,
                slice_position=float(index), sha256="0" * 64, rows=size, columns=size,
                bits_stored=12, window_center=1100 + 40, window_width=400, display_offset=1100,
            )  # fmt: skip
            image.original.save(f"{case.case_id}-{index}.dcm", ContentFile(b"-"), save=False)
            image.display.save(f"{case.case_id}-{index}.png", ContentFile(png), save=False)
            image.save()
    user = User.objects.create(username="ctreader", password=make_password(PASSWORD))
    reader = Reader.objects.create(user=user, code="CT1")
    Enrolment.objects.create(study=study, reader=reader)
    randomize_study(study=study)
    open_study(study=study)
    first = Assignment.objects.filter(reader=reader, session__number=1).order_by("position")[0]
    print(f"slices: {2 * slices} PNGs, {total / 2 / slices / 1024:.0f} KiB each on average")
    return f"/assignments/{first.pk}/"


def reuse() -> str:
    """The first assignment of the study an earlier run built (same database and --var-dir)."""
    import django

    django.setup()
    from studyplatform.reading.models import Assignment

    first = Assignment.objects.filter(
        reader__user__username="ctreader", session__number=1
    ).order_by("position")[0]
    return f"/assignments/{first.pk}/"


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (gunicorn's master and workers), KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(found.group(1)) if found else 0
    return total


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            self.samples.append((time.perf_counter(), _rss_kib(self.pid)))
            time.sleep(0.02)

    def peak_between(self, start: float, end: float) -> int:
        return max((kib for t, kib in self.samples if start <= t <= end), default=0)

    def at(self, moment: float) -> int:
        before = [kib for t, kib in self.samples if t <= moment]
        return before[-1] if before else 0


def stream_all(port: int, urls: list[str], parallel: int) -> tuple[int, float]:
    """Fetch every slice (``parallel`` at a time); return bytes received and seconds."""
    client = Client(port)
    client.login("ctreader")
    received = [0]
    lock = threading.Lock()
    pending = list(urls)

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                url = pending.pop()
            status, _, body, _ = client.request("GET", url)
            assert status == 200, (url, status)
            with lock:
                received[0] += len(body)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return received[0], time.perf_counter() - started


def frame_stats(frames: list[list[float]]) -> dict[str, float]:
    times = [f[0] for f in frames]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    drawn = [f[1] for f in frames]
    new_slices = sum(1 for a, b in itertools.pairwise(drawn) if b != a)
    behind = sum(1 for f in frames if f[1] < f[2] - 1)
    seconds = (times[-1] - times[0]) / 1000
    return {
        "frames": len(frames),
        "fps": (len(frames) - 1) / seconds,
        "slices_per_s": new_slices / seconds,
        "p50_frame_ms": statistics.median(gaps),
        "max_frame_ms": max(gaps),
        "frames_behind": behind,
    }


def browse(port: int, path: str, runs: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    results: list[dict[str, Any]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_options())
        base = f"http://127.0.0.1:{port}"

        def open_case() -> tuple[Any, Any]:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            open_reading_page(page, base, "ctreader", path)
            return context, page

        for _ in range(runs):
            # Fresh profile: nothing cached. First slice, then every slice decoded, then scroll.
            context, page = open_case()
            first = float(page.get_attribute("#viewer", "data-drawn-at") or "nan")
            html = page.evaluate("() => performance.getEntriesByType('navigation')[0].responseEnd")
            page.wait_for_function(
                "() => readingViewer.state().loaded === readingViewer.state().slices",
                timeout=120_000,
                polling=10,
            )
            loaded = page.evaluate("() => performance.now()")
            warm = frame_stats(page.evaluate(SCROLL, 1))
            context.close()
            # Fresh profile again: scroll from the first slice on, while slices still arrive.
            context, page = open_case()
            cold = frame_stats(page.evaluate(SCROLL, 1))
            context.close()
            # And at a reader's pace: a slice every third frame (about 20 a second).
            context, page = open_case()
            paced = frame_stats(page.evaluate(SCROLL, 3))
            context.close()
            results.append(
                {
                    "first_slice_ms": first,
                    "page_ms": html,
                    "all_loaded_ms": loaded,
                    "cold": cold,
                    "paced": paced,
                    "warm": warm,
                }
            )
        browser.close()
    return results


def main() -> None:
    parser = arguments(
        __doc__.split("\n\n")[0],
        port=8733,
        var_dir="bench-ct",
        database="volumes_bench",
        reuse="Keep the study built by an earlier run.",
    )
    args = parser.parse_args()
    env = prepared_environment(args)
    started = time.perf_counter()
    path = reuse() if args.reuse else build(args.slices, args.size)
    print(f"study ready in {time.perf_counter() - started:.1f} s", flush=True)

    with gunicorn(env, args.port) as server:
        sampler = Sampler(server.pid)
        try:
            client = Client(args.port)
            client.login("ctreader")
            status, _, page, _ = client.request("GET", path)
            assert status == 200, status
            found = re.search(
                rb'id="reading-data" type="application/json">(.*?)</script>', page, re.S
            )
            assert found
            urls = [s["url"] for s in json.loads(found.group(1))["series"][0]["slices"]]
            sampler.start()
            time.sleep(0.5)
            idle = sampler.at(time.perf_counter())
            rows = []
            for parallel in (1, 4):
                begin = time.perf_counter()
                size, seconds = stream_all(args.port, urls, parallel)
                end = time.perf_counter()
                rows.append((parallel, size, seconds, sampler.peak_between(begin, end)))
            begin = time.perf_counter()
            runs = browse(args.port, path, args.runs)
            browser_peak = sampler.peak_between(begin, time.perf_counter())
            after = sampler.at(time.perf_counter())
        finally:
            sampler.running = False

    print(f"\nserver RSS (gunicorn master + 1 worker): idle {idle / 1024:.0f} MiB")
    for parallel, size, seconds, peak in rows:
        print(
            f"  all {len(urls)} slices, {parallel} at a time: {size / 2**20:.0f} MiB in "
            f"{seconds:.2f} s ({len(urls) / seconds:.0f} slices/s), peak RSS {peak / 1024:.0f} MiB"
        )
    print(f"  browser runs: peak RSS {browser_peak / 1024:.0f} MiB; after {after / 1024:.0f} MiB")
    print("\nbrowser (headless Chromium, software rendering):")
    for number, run in enumerate(runs, start=1):
        print(
            f"  run {number}: first slice {run['first_slice_ms']:.0f} ms after navigation "
            f"(page {run['page_ms']:.0f} ms), all {len(urls)} decoded at "
            f"{run['all_loaded_ms']:.0f} ms"
        )
        for label in ("cold", "paced", "warm"):
            s = run[label]
            print(
                f"    scroll {label}: {s['fps']:.1f} frames/s, {s['slices_per_s']:.1f} slices/s, "
                f"frame p50 {s['p50_frame_ms']:.1f} ms max {s['max_frame_ms']:.1f} ms, "
                f"{s['frames_behind']} frames behind the wheel"
            )


if __name__ == "__main__":
    main()
