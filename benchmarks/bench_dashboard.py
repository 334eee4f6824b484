"""Time the coordinator's dashboard page for 50 readers x 5000 cases (target: <= 300 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h8 \
        .venv/bin/python benchmarks/bench_dashboard.py

Builds the study with COPY on first use (benchmarks/bigstudy.py), then requests the page through
Django's test client (the whole view: access check, aggregates, template), after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bigstudy import SLUG, build, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    setup_django()
    build()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-coordinator"))
    url = f"/dashboard/{SLUG}/"
    t0 = time.perf_counter()
    response = client.get(url)
    cold = 1000 * (time.perf_counter() - t0)
    assert response.status_code == 200, response.status_code
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(1000 * (time.perf_counter() - t0))
        assert response.status_code == 200
    from studyplatform.dashboard.selectors import study_overview
    from studyplatform.studies.models import Study

    overview = study_overview(Study.objects.get(slug=SLUG))
    print(
        f"dashboard {url}: {overview.n_readers} readers, {overview.n_cases} cases, "
        f"{overview.total} assignments, {overview.done} reads, {len(response.content)} bytes"
    )
    print(f"first request of the process (aggregates every read): {cold:.0f} ms")
    print(
        f"then median {statistics.median(times):.0f} ms, min {min(times):.0f} ms, "
        f"max {max(times):.0f} ms over {args.repeat} requests"
    )


if __name__ == "__main__":
    main()
