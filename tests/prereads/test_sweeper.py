"""Pre-reads heal themselves: lost messages are re-queued, dead runs are swept back, once each.

The sweeper is the task the worker's beat runs (``prereads.sweep``); here it is called directly.
A real worker killed as a whole, and a broker stopped mid-intake, are in tests/faults/.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from studyplatform.celery import MAX_TASK_TIME_LIMIT, app
from studyplatform.prereads.models import PreRead, PreReadFinding, PreReadStatus
from studyplatform.prereads.runner import run_batch
from studyplatform.prereads.services import pin_model, request_prereads
from studyplatform.prereads.tasks import run_preread_batch, sweep_lost_prereads
from studyplatform.studies.models import Case, Design, FindingType
from studyplatform.studies.services import issue_site_token
from tests.factories import SiteFactory, StudyFactory
from tests.studies.import_fixtures import pydicom_file

pytestmark = pytest.mark.django_db


def test_broker_visibility_timeout_outlasts_every_task_time_limit(settings):
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    limits = [
        int(task.time_limit or 0) for name, task in app.tasks.items() if "celery." not in name
    ]
    assert max(limits) <= MAX_TASK_TIME_LIMIT
    assert settings.CELERY_TASK_TIME_LIMIT <= MAX_TASK_TIME_LIMIT
    assert visibility > max([*limits, app.conf.task_time_limit or 0, MAX_TASK_TIME_LIMIT])
    assert "prereads.sweep" in {entry["task"] for entry in app.conf.beat_schedule.values()}


def _age(**fields: object) -> None:
    PreRead.objects.update(**fields)


def test_sweeper_returns_a_dead_runs_prereads_and_queues_them_once(
    study_factory, ai_model, settings, django_capture_on_commit_callbacks
):
    settings.PREREAD_STALE_AFTER = 60
    study = study_factory(3)
    request_prereads(study=study, model=ai_model)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    _age(status=PreReadStatus.RUNNING, claim="dead-run", heartbeat_at=an_hour_ago, attempts=1)

    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_lost_prereads() == {"returned": 3, "requeued": 3}
    with django_capture_on_commit_callbacks(execute=False) as sent_again:
        assert sweep_lost_prereads() == {"returned": 0, "requeued": 0}  # just queued: wait

    assert len(sent) == 1 and not sent_again
    assert set(PreRead.objects.values_list("status", flat=True)) == {PreReadStatus.PENDING}
    run_preread_batch(preread_ids=list(PreRead.objects.values_list("pk", flat=True)))
    assert PreReadFinding.objects.count() == 3 * 3


def test_sweeper_leaves_live_runs_and_recent_messages_alone(
    study_factory, ai_model, settings, django_capture_on_commit_callbacks
):
    settings.PREREAD_STALE_AFTER = 60
    settings.PREREAD_REQUEUE_AFTER = 60
    study = study_factory(2)
    request_prereads(study=study, model=ai_model)
    first, second = PreRead.objects.order_by("pk")
    PreRead.objects.filter(pk=first.pk).update(
        status=PreReadStatus.RUNNING, claim="live", heartbeat_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_lost_prereads() == {"returned": 0, "requeued": 0}
    assert not sent
    PreRead.objects.filter(pk=second.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_lost_prereads() == {"returned": 0, "requeued": 1}
    assert len(sent) == 1


def test_a_second_message_for_cases_a_live_run_holds_computes_nothing(study_factory, ai_model):
    study = study_factory(2)
    request_prereads(study=study, model=ai_model)
    ids = list(PreRead.objects.values_list("pk", flat=True))
    _age(status=PreReadStatus.RUNNING, claim="live-run", heartbeat_at=timezone.now(), attempts=1)

    duplicate = run_batch(preread_ids=ids, claim="requeued-message")
    redelivered = run_batch(preread_ids=ids, claim="live-run")  # the same message, redelivered

    assert (duplicate.done, duplicate.skipped) == (0, 2)
    assert redelivered.done == 2
    assert list(PreRead.objects.values_list("attempts", flat=True)) == [2, 2]
    assert PreReadFinding.objects.count() == 2 * 3


def test_arriving_case_is_stored_and_answered_at_once_while_the_broker_is_down(
    client, ai_model, broker_down, caplog, django_capture_on_commit_callbacks
):
    study = StudyFactory(slug="pros", design=Design.PROSPECTIVE)
    pin_model(study=study, model=ai_model)  # arrivals are pre-read by the pinned model
    FindingType.objects.create(study=study, code="nodule", name="Nodule", order=1)
    token = issue_site_token(study=study, site=SiteFactory(code="north"), name="PACS")
    dicom = pydicom_file("MR_small.dcm")
    started = time.monotonic()
    with (
        caplog.at_level(logging.ERROR),
        django_capture_on_commit_callbacks(execute=True),
        dicom.open("rb") as image,
    ):
        response = client.post(
            f"/api/studies/{study.slug}/cases/",
            {"metadata": json.dumps({"case_id": "P-001"}), "images": [image]},
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.content
    assert elapsed < 10  # a retrying publish took 19 s; the upload itself takes a second or two
    assert Case.objects.filter(study=study, case_id="P-001").exists()
    (preread,) = PreRead.objects.filter(case__study=study)
    assert preread.status == PreReadStatus.PENDING  # left for the sweeper
    assert "could not queue prereads.run_batch" in caplog.text
