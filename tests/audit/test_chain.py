"""The audit chain: appends link up, and any edited, deleted or reordered event is detected."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import ChainHead, chain_head, verify_chain
from studyplatform.audit.services import GENESIS_HASH, record, snapshot
from tests.factories import StudyFactory, TruthFactory, UserFactory

pytestmark = pytest.mark.django_db


def _events(n, **kwargs):
    study = StudyFactory()
    user = UserFactory()
    return [
        record(
            actor=user,
            action=Action.STUDY_UPDATE,
            obj=study,
            before={"title": f"t{i}"},
            after={"title": f"t{i + 1}"},
            **kwargs,
        )
        for i in range(n)
    ]


def _tamper(sql, params=()):
    """Change stored events behind the application's back (the trigger off on PostgreSQL)."""
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgresql:
            # ALTER TABLE needs no pending (deferred) foreign-key checks on the table.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        if postgresql:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_record_links_events_in_sequence():
    first, second, third = _events(3)  # after the event of the actor's account creation
    assert [first.sequence, second.sequence, third.sequence] == [2, 3, 4]
    assert AuditEvent.objects.get(sequence=1).previous_hash == GENESIS_HASH
    assert first.previous_hash == AuditEvent.objects.get(sequence=1).hash
    assert second.previous_hash == first.hash and third.previous_hash == second.hash
    assert chain_head() == ChainHead(4, third.hash)
    report = verify_chain()
    assert report.ok and report.events == 4


def test_record_keeps_actor_object_study_and_json_values():
    truth = TruthFactory()
    user = UserFactory(username="coord")
    event = record(actor=user, action=Action.TRUTH_IMPORT, obj=truth, after=snapshot(truth))
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_username == "coord"
    assert stored.object_type == "studies.truth" and stored.object_id == str(truth.pk)
    assert stored.study_id == truth.case.study_id  # found through truth.case.study
    after = stored.after or {}
    assert after["present"] is True and isinstance(after["recorded_at"], str)
    assert stored.compute_hash() == stored.hash


def test_awkward_numbers_hash_the_same_after_the_database_stored_them():
    values = {"nan": float("nan"), "big": 1e20, "neg_zero": -0.0, "small": 1.5e-10, "p": 0.1}
    event = record(actor=None, action="model.register", object_type="m", after=values)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.after == {
        "nan": "nan",
        "big": 10**20,
        "neg_zero": 0.0,
        "small": 1.5e-10,
        "p": 0.1,
    }
    assert stored.compute_hash() == stored.hash
    assert verify_chain().ok


def test_system_event_has_no_actor():
    event = record(actor=None, action=Action.EXPORT_CREATE, object_type="export", object_id="x")
    assert event.actor_id is None and event.actor_username == ""
    assert verify_chain().ok


def test_edited_event_is_detected_naming_its_sequence():
    _events(4)
    _tamper("UPDATE audit_auditevent SET reason = 'nothing happened' WHERE sequence = 2")
    report = verify_chain()
    assert report.first_bad_sequence == 2 and "edited" in report.problem
    with pytest.raises(CommandError, match="audit chain broken at sequence 2"):
        call_command("verify_audit")


def test_edited_before_value_is_detected():
    _events(3)
    _tamper(
        "UPDATE audit_auditevent SET after = %s WHERE sequence = 3",
        ['{"title": "forged"}'],
    )
    assert verify_chain().first_bad_sequence == 3


def test_deleted_event_is_detected():
    _events(5)
    _tamper("DELETE FROM audit_auditevent WHERE sequence = 3")
    report = verify_chain()
    assert report.first_bad_sequence == 3 and "expected sequence 3, found 4" in report.problem


def test_reordered_events_are_detected():
    _events(4)
    _tamper("UPDATE audit_auditevent SET sequence = 999999 WHERE sequence = 2")
    _tamper("UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3")
    _tamper("UPDATE audit_auditevent SET sequence = 3 WHERE sequence = 999999")
    assert verify_chain().first_bad_sequence == 2


def test_removed_newest_events_are_detected_against_a_recorded_head(capsys):
    events = _events(4)
    head = f"{events[-1].sequence}:{events[-1].hash}"
    _tamper("DELETE FROM audit_auditevent WHERE sequence >= 3")
    assert verify_chain().ok  # a shorter chain is consistent in itself
    with pytest.raises(CommandError, match="broken at sequence 3: the chain ends at 2"):
        call_command("verify_audit", "--expect-head", head)


def test_verify_audit_reports_an_intact_chain(capsys):
    events = _events(2)  # and the account's creation
    call_command("verify_audit", "--expect-head", f"3:{events[-1].hash}")
    assert f"audit chain intact: 3 events, head 3:{events[-1].hash}" in capsys.readouterr().out


def test_verify_audit_refuses_a_malformed_head():
    with pytest.raises(CommandError, match="is not SEQUENCE:SHA256"):
        call_command("verify_audit", "--expect-head", "three")


def test_record_needs_an_object():
    with pytest.raises(ValueError, match="needs obj or object_type"):
        record(actor=None, action="x.y")


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET reason = 'x' WHERE sequence = 1",
        "DELETE FROM audit_auditevent WHERE sequence = 1",
    ],
)
def test_postgresql_refuses_update_and_delete_of_audit_events(sql):
    _events(1)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 2  # the account's creation and the event


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_valid_chain():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has a single writer; the chain lock is exercised on PostgreSQL")
    study = StudyFactory()
    errors = []

    def append(worker):
        try:
            for i in range(10):
                with transaction.atomic():
                    record(actor=None, action="test.append", obj=study, after={"w": worker, "i": i})
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = verify_chain()
    assert report.ok and report.events == 60
    assert chain_head().sequence == 60
