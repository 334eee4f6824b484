"""Time the analysis cache key, ``data_version``, on 50 readers x 5000 cases (1,000,000 rows).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h8 \
        .venv/bin/python benchmarks/bench_data_version.py [--readers 50 --cases 5000]

Builds the study with COPY on first use (benchmarks/bigstudy.py), then computes the digest of
every analysis input (reads streamed through a server-side cursor) a few times, and reports the
peak Python memory of one run (tracemalloc), which stays flat however many reads there are.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from bigstudy import SLUG, build, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--cases", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    build(n_readers=args.readers, n_cases=args.cases)
    from studyplatform.dashboard.selectors import data_version
    from studyplatform.reading.models import ReadFinding
    from studyplatform.studies.models import Study

    study = Study.objects.get(slug=SLUG)
    rows = ReadFinding.objects.filter(read__assignment__session__study=study).count()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        version = data_version(study)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    data_version(study)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"data_version of {rows} read findings: {version[:12]}")
    print(
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s over {args.repeat} "
        f"runs; peak Python memory {peak / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
