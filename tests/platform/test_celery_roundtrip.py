"""A task travels through a real broker to a real worker process and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studyplatform.studies.models import Study
from tests.services import (
    celery_worker,
    current_database_url,
    manage,
    rabbitmq_url,
    redis_url,
    require,
    service_env,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _round_trip(env: dict[str, str], log: Path) -> dict[str, object]:
    with celery_worker(env, log=log):
        try:
            out = manage(env, "check_worker", "--json", "--timeout", "60", timeout=90)
        except AssertionError as error:
            raise AssertionError(f"{error}\nworker log:\n{log.read_text()}") from None
    answer: dict[str, object] = json.loads(out)
    return answer


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_task_round_trip_through_broker_sees_the_same_database(broker, tmp_path):
    url = redis_url() if broker == "redis" else rabbitmq_url()
    require(url, broker)
    Study.objects.create(slug="visible-to-worker", title="t", seed=1)
    env = service_env(
        tmp_path,
        DATABASE_URL=current_database_url(),
        CELERY_BROKER_URL=url,
        CELERY_RESULT_BACKEND=None,
    )

    answer = _round_trip(env, tmp_path / "worker.log")

    assert answer["studies"] == 1
    assert answer["database"] in {"postgresql", "sqlite"}


def test_default_sqlite_and_embedded_broker_round_trip_with_no_server(tmp_path):
    env = service_env(
        tmp_path, DATABASE_URL=None, CELERY_BROKER_URL=None, CELERY_RESULT_BACKEND=None
    )
    manage(env, "migrate", "-v", "0")

    answer = _round_trip(env, tmp_path / "worker.log")

    assert answer["database"] == "sqlite"
    assert answer["studies"] == 0
    assert (tmp_path / "db.sqlite3").exists()
    assert (tmp_path / "broker" / "queue").is_dir()
