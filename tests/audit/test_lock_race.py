"""A lock signed while readers submit: no read is dated after the signature, the digest holds.

Real threads, real PostgreSQL transactions (transactional test): readers submit through the
reading page's endpoint while the coordinator signs the lock.
"""

from __future__ import annotations

import json
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from studyplatform.audit.selectors import study_data_digest
from studyplatform.reading.models import Assignment, Read
from studyplatform.reading.services import open_study, randomize_study
from tests.reading.helpers import make_study
from tests.signing import sign_lock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _reader_works(user: Any, assignment_ids: list[int], start: threading.Barrier,
                  answers: list[int]) -> None:  # fmt: skip
    client = Client()
    client.force_login(user)
    start.wait()
    try:
        for number, pk in enumerate(assignment_ids):
            if client.get(reverse("readers-assignment", args=[pk])).status_code != 200:
                answers.append(-1)
                return
            body = {
                "idempotency_key": f"race-{pk}-{number:04d}",
                "findings": {
                    "nodule": {"present": True, "confidence": 70},
                    "effusion": {"present": False, "confidence": 20},
                },
                "free_text": "",
            }
            response = client.post(
                reverse("readers-submit", args=[pk]),
                json.dumps(body),
                content_type="application/json",
            )
            answers.append(response.status_code)
            if response.status_code not in (200, 201):
                return  # refused (the lock): the rest of the session stays unread
    finally:
        connection.close()


def _signer(study: Any, start: threading.Barrier, wait_for: threading.Event,
            out: dict[str, Any]) -> None:  # fmt: skip
    start.wait()
    try:
        wait_for.wait(timeout=30)
        out["signature"] = sign_lock(study)
    finally:
        connection.close()


def test_a_submit_racing_the_lock_commits_before_the_signature_or_is_refused(roles):
    study = make_study(n_cases=12, n_readers=3, with_images=True, slug="race")
    randomize_study(study=study)
    open_study(study=study)
    plan: dict[Any, list[int]] = {}
    for assignment in (
        Assignment.objects.filter(session__study=study, session__number=1)
        .select_related("reader__user")
        .order_by("reader_id", "position", "step")
    ):
        plan.setdefault(assignment.reader.user, []).append(assignment.pk)
    start = threading.Barrier(len(plan) + 1)
    some_read = threading.Event()
    answers: list[int] = []
    out: dict[str, Any] = {}

    class Watcher(list[int]):
        def append(self, status: int) -> None:
            super().append(status)
            answers.append(status)
            if len(answers) >= 4:
                some_read.set()  # part-way: sign while the others are still submitting

    threads = [
        threading.Thread(target=_reader_works, args=(user, ids, start, Watcher()))
        for user, ids in plan.items()
    ]
    threads.append(threading.Thread(target=_signer, args=(study, start, some_read, out)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    signature = out["signature"]
    reads = Read.objects.filter(assignment__session__study=study)
    assert reads.exists() and 201 in answers
    refused = [a for a in answers if a not in (200, 201)]  # 403 submit, -1 page not opened
    assert refused, f"every reader finished before the lock: {answers}"
    assert not reads.filter(submitted_at__gt=signature.signed_at).exists()
    study.refresh_from_db()
    assert study_data_digest(study) == signature.data_sha256
    output = StringIO()
    call_command("verify_audit", stdout=output)
    assert "1 signed data digest(s) recomputed and matching" in output.getvalue()
