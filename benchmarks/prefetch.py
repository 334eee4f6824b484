"""Opening the next case with and without the next-case prefetch: click to first image drawn.

Builds (in a flushed database, by default ``prefetch_bench`` on 127.0.0.1) the CT viewer
benchmark's study (``ct_viewer.build``: two CT cases of 300 slices of 512 x 512, 282 KiB per
16-bit PNG) and a radiograph study of two cases with one 2048 x 2048 12-bit image each (a smooth
body with 20 gray levels of noise: about 5 MiB per PNG), starts gunicorn in production settings
(one worker process, four threads), and in headless Chromium (a fresh profile per run, so
nothing is cached before) reads the first case of each study:

- with prefetch: opens case 1, waits until the page's prefetch is done
  (``html[data-prefetch="done"]``), answers, clicks "Submit and next";
- without: the same with ``prefetch.js`` blocked (the page works as before it existed), waiting
  until case 1's own series is loaded before answering, so that both start from a quiet page.

Measured with the browser's own clocks: the click's time (``performance.timeOrigin +
performance.now()`` on case 1's page) to the animation frame that drew case 2's first image
(``timeOrigin + data-drawn-at`` on case 2's page, set by the viewer when it draws), and on case
2's page the Resource Timing entry of its first image (``transferSize`` 0: from the cache) and
the navigation's ``responseEnd`` (the HTML).

Usage::

    .venv/bin/python benchmarks/prefetch.py [--runs 3] [--slices 300] [--size 512]
        [--database-url postgres://postgres@127.0.0.1:5432/prefetch_bench]
"""

from __future__ import annotations

import operator
import re
import statistics
import tempfile
import time
from functools import partial
from typing import Any

from bench_reading import PASSWORD
from browser_bench import (
    VIEWPORT,
    arguments,
    chromium_options,
    gunicorn,
    open_reading_page,
    prepared_environment,
)
from ct_viewer import build as build_ct

ANSWER = """() => {
  document.querySelectorAll('input[type=radio][value="absent"]').forEach((r) => { r.click(); });
  document.querySelectorAll('input[name$="-confidence"]').forEach((i) => {
    i.value = '10'; i.dispatchEvent(new Event('input', {bubbles: true}));
    i.dispatchEvent(new Event('change', {bubbles: true}));
  });
}"""

CLICK = """() => {
  const at = performance.timeOrigin + performance.now();
  document.querySelector('#submit').click();
  return at;
}"""

OPENED = """() => {
  const first = readingViewer.state();
  const nav = performance.getEntriesByType('navigation')[0];
  const image = performance.getEntriesByType('resource').find((e) => e.name.includes('/pixels/'));
  return {
    drawn: performance.timeOrigin + Number(document.querySelector('#viewer').dataset.drawnAt),
    origin: performance.timeOrigin, html: nav.responseEnd, image: image && image.name,
    transfer: image ? image.transferSize : null, imageMs: image ? image.duration : null,
    slice: first.slice,
  };
}"""


def build_radiographs(size: int) -> None:
    """Add a radiograph study of two cases (the source ``clone`` copies for each run)."""
    import numpy as np
    from django.core.files.base import ContentFile

    from studyplatform.prereads.models import AIModel
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

    model = AIModel.objects.get(name="bench")
    study = Study.objects.create(
        slug="xrbench", title="Radiographs", seed=8, ai_model_name=model.name,
        ai_model_version=model.version, ai_model_sha256=model.sha256,
    )  # fmt: skip
    Arm.objects.create(study=study, name="unassisted", label="Unassisted", order=1)
    Arm.objects.create(study=study, name="assisted", label="AI-assisted", shows_ai=True, order=2)
    finding = FindingType.objects.create(study=study, code="nodule", name="Nodule", order=1)
    site = Site.objects.create(code="xr-site", name="XR site")
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    body = 2500 - 2000 * (xx**2 + yy**2)
    for number in range(2):
        case = Case.objects.create(study=study, case_id=f"XR{number}", site=site, modality="CR")
        Truth.objects.create(
            case=case, finding_type=finding, present=bool(number), source="synthetic"
        )
        values = np.clip(body + rng.normal(0, 20, body.shape), 0, 4095).astype(np.uint16)
        png = imaging.to_display_png16(values)
        image = Image(
            case=case, series=Series.objects.first_of(case), position=1, slice_number=1,
            sha256="0" * 64, rows=size, columns=size, bits_stored=12, window_center=2000,
            window_width=3000,
        )  # fmt: skip
        image.original.save(f"{case.case_id}.dcm", ContentFile(b"-"), save=False)
        image.display.save(f"{case.case_id}.png", ContentFile(png), save=False)
        image.save()
        print(f"radiograph {case.case_id}: {len(png) / 2**20:.1f} MiB PNG")


def clone(source: str, tag: str, readers: int) -> list[tuple[str, str]]:
    """A new open study over the source study's stored images (the same files: nothing is
    encoded again) with ``readers`` fresh readers; (username, first assignment URL) each.

    A submitted read never changes, so every measured run needs a reader who has read nothing.
    """
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    from studyplatform.reading.models import Assignment, Enrolment, Reader
    from studyplatform.reading.services import open_study, randomize_study
    from studyplatform.studies.models import Image, Series, Study, Truth

    def copy(row: Any, **changes: Any) -> Any:
        fields = {
            f.attname: getattr(row, f.attname)
            for f in row._meta.concrete_fields
            if not f.primary_key
        }
        return type(row).objects.create(**(fields | changes))

    src = Study.objects.get(slug=source)
    study = copy(src, slug=f"{source}-{tag}", state="draft", opened_at=None, protocol_version=0)
    arms = {arm.pk: copy(arm, study_id=study.pk) for arm in src.arms.all()}
    findings = {f.pk: copy(f, study_id=study.pk) for f in src.finding_types.all()}
    assert arms
    for case in src.cases.all():
        new = copy(case, study_id=study.pk)
        for truth in Truth.objects.filter(case=case):
            copy(truth, case_id=new.pk, finding_type_id=findings[truth.finding_type_id].pk)
        series = {s.pk: copy(s, case_id=new.pk) for s in Series.objects.filter(case=case)}
        for image in Image.objects.filter(case=case):
            copy(image, case_id=new.pk, series_id=series[image.series_id].pk)
    users = []
    for i in range(readers):
        user = User.objects.create(username=f"{source}-{tag}-{i}", password=make_password(PASSWORD))
        Enrolment.objects.create(
            study=study, reader=Reader.objects.create(user=user, code=f"{source[:2]}{tag}-{i}")
        )
        users.append(user)
    randomize_study(study=study)
    open_study(study=study)
    return [
        (
            user.username,
            "/assignments/{}/".format(
                Assignment.objects.filter(reader__user=user, session__number=1)
                .order_by("position", "step")[0]
                .pk
            ),
        )
        for user in users
    ]


def browse(port: int, cases: dict[str, list[tuple[str, str]]], runs: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    with sync_playwright() as playwright:
        for run in range(1, runs + 1):
            for kind, accounts in cases.items():
                for prefetch in (True, False):
                    username, path = accounts[2 * (run - 1) + (0 if prefetch else 1)]
                    # A fresh profile on disk: nothing cached, and a disk cache as a reader's
                    # browser has (a profile kept in memory has a small cache).
                    profile = tempfile.TemporaryDirectory(prefix="bench-pf-profile-")
                    context = playwright.chromium.launch_persistent_context(
                        profile.name, viewport=VIEWPORT, **chromium_options()
                    )
                    page = context.new_page()
                    if not prefetch:
                        page.route(
                            re.compile(r"/prefetch(\.[0-9a-f]+)?\.js$"), lambda route: route.abort()
                        )
                    open_reading_page(page, base, username, path)
                    started = time.perf_counter()
                    if prefetch:
                        page.wait_for_selector('html[data-prefetch="done"]', timeout=300_000)
                        fetched = page.evaluate("readingPrefetch.state()")
                    else:
                        page.wait_for_function(
                            "() => readingViewer.state().loaded === readingViewer.state().slices",
                            timeout=300_000,
                        )
                        assert page.evaluate("typeof window.readingPrefetch") == "undefined"
                        fetched = {"fetched": 0, "bytes": 0}
                    waited = time.perf_counter() - started
                    page.evaluate(ANSWER)
                    clicked = page.evaluate(CLICK)
                    current = f"{base}{path}"
                    page.wait_for_url(partial(operator.ne, current))
                    page.wait_for_selector('#viewer[data-ready="true"]', timeout=120_000)
                    opened = page.evaluate(OPENED)
                    results.append(
                        {
                            "run": run,
                            "kind": kind,
                            "prefetch": prefetch,
                            "click_to_drawn_ms": opened["drawn"] - clicked,
                            "click_to_navigation_ms": opened["origin"] - clicked,
                            "html_ms": opened["html"],
                            "first_image_transfer": opened["transfer"],
                            "first_image_ms": opened["imageMs"],
                            "prefetched": fetched["fetched"],
                            "prefetched_mib": fetched["bytes"] / 2**20,
                            "prefetch_wait_s": waited,
                        }
                    )
                    print(results[-1], flush=True)
                    context.close()
                    profile.cleanup()
    return results


def main() -> None:
    parser = arguments(
        __doc__.split("\n\n")[0],
        port=8734,
        var_dir="bench-pf",
        database="prefetch_bench",
        reuse="Keep the images built by an earlier run.",
    )
    parser.add_argument("--radiograph-size", type=int, default=2048)
    args = parser.parse_args()
    env = prepared_environment(args)
    started = time.perf_counter()
    import django

    django.setup()
    from studyplatform.studies.models import Study

    if not args.reuse or not Study.objects.filter(slug="xrbench").exists():
        build_ct(args.slices, args.size)
        build_radiographs(args.radiograph_size)
    tag = time.strftime("%H%M%S")
    cases = {
        f"CT {args.slices} x {args.size} x {args.size}": clone("ctbench", tag, 2 * args.runs),
        f"radiograph {args.radiograph_size} x {args.radiograph_size}": clone(
            "xrbench", tag, 2 * args.runs
        ),
    }
    print(f"studies ready in {time.perf_counter() - started:.1f} s", flush=True)
    with gunicorn(env, args.port):
        results = browse(args.port, cases, args.runs)

    print("\n| case | prefetch | click to first image drawn (ms), per run | median |")
    print("|---|---|---|---|")
    for kind in cases:
        for prefetch in (True, False):
            rows = [r for r in results if r["kind"] == kind and r["prefetch"] == prefetch]
            times = [r["click_to_drawn_ms"] for r in rows]
            print(
                f"| {kind} | {'on' if prefetch else 'off'} | "
                f"{', '.join(f'{t:.0f}' for t in times)} | {statistics.median(times):.0f} |"
            )


if __name__ == "__main__":
    main()
