"""Nothing lost: reads submitted to a real server survive lost database connections and load.

A gunicorn server runs against the test database (PostgreSQL: these tests need real concurrent
connections). The clients are the load script's (benchmarks/load_nothing_lost.py): they open the
reading page and submit with its idempotency key, retrying as the page does.

- The database connection is lost while a submit is in flight: its backends are terminated, or
  (where CI=true or ALLOW_PG_RESTART=1) the machine's PostgreSQL server is restarted. The app
  recovers (persistent connections are health-checked at each request), and the client's retry
  with its key stores the read exactly once.
- A small run of the load script: concurrent readers with duplicated submits and dropped
  connections store exactly one read per assignment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.services import IN_CI, ROOT, current_database_url


def _load_script() -> Any:
    """benchmarks/load_nothing_lost.py, loaded by path: ``benchmarks`` is a folder of scripts."""
    spec = importlib.util.spec_from_file_location(
        "load_nothing_lost", ROOT / "benchmarks" / "load_nothing_lost.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


load = _load_script()
HttpClient, RunStats, Tally = load.HttpClient, load.RunStats, load.Tally
build_study, free_port, gunicorn, open_case = (
    load.build_study,
    load.free_port,
    load.gunicorn,
    load.open_case,
)
run_load, server_environment, session_cookies = (
    load.run_load,
    load.server_environment,
    load.session_cookies,
)
submit_until_stored, tally = load.submit_until_stored, load.tally

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ALLOW_PG_RESTART = IN_CI or os.environ.get("ALLOW_PG_RESTART") == "1"


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        message = "needs PostgreSQL (set DATABASE_URL)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _terminate_other_connections() -> int:
    """Cut every other connection to the test database, as a failover or a proxy would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _restart_postgresql() -> None:
    """Restart the machine's PostgreSQL cluster (every connection of every client is lost)."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    connection.close()  # this process's connection died with the server
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError("PostgreSQL did not come back within 60 s")
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["terminate", "restart"])
def test_submit_during_a_lost_database_is_stored_once_after_the_retry(fault, tmp_path):
    _require_postgresql()
    if fault == "restart" and not ALLOW_PG_RESTART:
        pytest.skip("restarts the machine's shared PostgreSQL: set ALLOW_PG_RESTART=1 (CI does)")
    plan = build_study(slug=f"pg-{fault}", n_readers=1, n_cases=5)
    [(username, ids)] = plan.items()
    cookies = session_cookies([username])
    env = server_environment(current_database_url(), tmp_path, debug=True)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    stats = RunStats()
    with gunicorn(env, port=port, workers=1, log=log):
        client = HttpClient(port, {"sessionid": cookies[username]})
        first = open_case(client, ids[0])
        # The worker now holds a persistent connection (CONN_MAX_AGE) for the next requests.
        assert client.request("POST", first.submit_url, first.body, first.headers).status == 201

        case = open_case(client, ids[1])
        answers: list[Any] = []
        in_flight = threading.Thread(
            target=lambda: answers.append(
                submit_until_stored(client, case, stats, deadline=time.monotonic() + 90)
            )
        )
        in_flight.start()
        _restart_postgresql() if fault == "restart" else _terminate_other_connections()
        in_flight.join(timeout=120)
        [answer] = answers
        assert answer is not None, f"never stored; server log:\n{log.read_text()[-3000:]}"
        assert answer.status in (200, 201)

        # The client retries once more with the same key (its answer was lost, say): no new read.
        again = client.request("POST", case.submit_url, case.body, case.headers)
        assert again.status == 200 and json.loads(again.body)["created"] is False

        # Recovered: with the worker's connection cut again, the next read succeeds at once,
        # because each request checks its persistent connection before using it.
        assert _terminate_other_connections() >= 1
        for pk in ids[2:4]:
            following = open_case(client, pk)
            stored = client.request("POST", following.submit_url, following.body, following.headers)
            assert stored.status == 201, stored.body[:300]

    connection.close()
    assert tally(ids[:4], set(ids[:4])) == Tally(reads=4, duplicates=0, losses=0, unacknowledged=0)
    assert not stats.errors


def test_small_load_with_duplicates_and_dropped_connections_stores_one_read_each(
    tmp_path: Path,
):
    _require_postgresql()
    plan = build_study(slug="load-small", n_readers=5, n_cases=16)
    cookies = session_cookies(list(plan))
    env = server_environment(current_database_url(), tmp_path, debug=True)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, port=port, workers=2, log=log):
        stats, _ = run_load(
            port=port,
            plan=plan,
            cookies=cookies,
            duplicate_share=0.2,
            drop_share=0.2,
            max_seconds=150,
        )
    ids = [pk for assigned in plan.values() for pk in assigned]
    assert not stats.errors, stats.errors[:5]
    assert tally(ids, stats.acknowledged) == Tally(
        reads=len(ids), duplicates=0, losses=0, unacknowledged=0
    )
    assert stats.modes["duplicate"] and stats.modes["dropped after sending"]
    assert stats.modes["dropped mid-body"]
