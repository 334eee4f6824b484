"""randomize_study, open_study and allocate_arriving_case against the pure randomizer."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from studyplatform.reading.models import AllocationRecord, Assignment, Enrolment, ReadingSession
from studyplatform.reading.services import (
    AllocationError,
    allocate_arriving_case,
    case_infos,
    open_study,
    randomize_study,
    stored_allocation,
    verify_allocation,
)
from studyplatform.studies.models import Case, Study
from studyplatform.studies.randomization import ProspectiveAllocator, allocate
from tests.factories import CaseFactory, SiteFactory
from tests.reading.helpers import make_study

pytestmark = pytest.mark.django_db


def _rows(study: Study) -> list[tuple]:
    return sorted(
        Assignment.objects.filter(session__study=study).values_list(
            "reader__code", "case__case_id", "arm__name", "session__number", "position", "step"
        )
    )


def test_stored_rows_match_the_pure_allocation_and_its_fingerprint():
    study = make_study(n_cases=10, n_readers=3)
    record = randomize_study(study=study)
    expected = allocate(
        "crossover",
        seed=study.seed,
        cases=case_infos(study),
        readers=[f"{study.slug}-R{i}" for i in (1, 2, 3)],
        arms=["unassisted", "assisted"],
    )
    assert record.fingerprint == expected.fingerprint()
    assert stored_allocation(study).fingerprint() == expected.fingerprint()
    assert record.rows == len(expected.rows) == 3 * 10 * 2
    assert _rows(study) == sorted(
        (r.reader, r.case_id, r.arm, r.session, r.position, r.step) for r in expected.rows
    )
    assert ReadingSession.objects.filter(study=study).count() == 3 * 2


def test_truth_key_lists_each_finding_in_order():
    study = make_study(n_cases=3, n_readers=1)
    keys = {info.case_id: info.truth_key for info in case_infos(study)}
    assert keys["C000"] == "nodule=1,effusion=0"
    assert keys["C002"] == "nodule=0,effusion=1"


def test_randomizing_twice_verifies_and_duplicates_nothing():
    study = make_study()
    first = randomize_study(study=study)
    rows = _rows(study)
    second = randomize_study(study=study)
    assert second.pk == first.pk
    assert _rows(study) == rows
    assert AllocationRecord.objects.count() == 1


def test_changed_cases_need_replace_while_draft():
    study = make_study()
    randomize_study(study=study)
    CaseFactory(study=study, case_id="LATE", site=SiteFactory(code="north"))
    with pytest.raises(AllocationError, match="--replace"):
        randomize_study(study=study)
    record = randomize_study(study=study, replace=True)
    assert "LATE" in {row[1] for row in _rows(study)}
    assert verify_allocation(study) == record.fingerprint


def test_randomize_refuses_to_change_an_open_study():
    study = make_study()
    randomize_study(study=study)
    open_study(study=study)
    CaseFactory(study=study, case_id="LATE", site=SiteFactory(code="north"))
    with pytest.raises(AllocationError, match="cannot be changed"):
        randomize_study(study=study, replace=True)
    # Without replace, it verifies the stored allocation and leaves it alone.
    assert randomize_study(study=study).study_id == study.pk


def test_an_edited_assignment_is_detected():
    study = make_study()
    randomize_study(study=study)
    assignment = Assignment.objects.filter(session__study=study).first()
    other = study.arms.exclude(pk=assignment.arm_id).get()
    Assignment.objects.filter(pk=assignment.pk).update(arm=other)
    with pytest.raises(AllocationError, match="changed after randomization"):
        open_study(study=study)


def test_open_requires_an_allocation_and_sets_the_washout_dates():
    study = make_study()
    with pytest.raises(AllocationError, match="not been randomized"):
        open_study(study=study)
    randomize_study(study=study)
    opened = open_study(study=study)
    assert opened.state == "open"
    first = ReadingSession.objects.filter(study=study, number=1)
    second = ReadingSession.objects.filter(study=study, number=2)
    assert all(s.available_from is None for s in first)
    assert opened.opened_at is not None
    assert {s.available_from for s in second} == {opened.opened_at + timedelta(days=28)}
    with pytest.raises(AllocationError, match="already open"):
        open_study(study=study)


def test_split_plot_records_the_reader_groups():
    study = make_study(n_cases=8, n_readers=4, design="split_plot")
    record = randomize_study(study=study)
    groups = sorted(
        g for g in Enrolment.objects.filter(study=study).values_list("group", flat=True) if g
    )
    assert groups == [1, 1, 2, 2]
    assert record.rows == 4 * 4 * 2  # each reader reads half the cases in both arms


def test_sequential_has_two_steps_per_case():
    study = make_study(n_cases=4, n_readers=1, design="sequential")
    randomize_study(study=study)
    steps = Assignment.objects.filter(session__study=study).values_list(
        "position", "step", "arm__name"
    )
    assert sorted(steps) == [
        (p, s, a) for p in range(1, 5) for s, a in ((1, "unassisted"), (2, "assisted"))
    ]


def test_prospective_cases_are_allocated_on_arrival_by_site_index():
    study = make_study(n_cases=4, n_readers=3, design="prospective")
    study.readers_per_case = 2
    study.save()
    record = randomize_study(study=study)
    open_study(study=study)
    assert record.rows == 4 * 2
    north = SiteFactory(code="north")
    late = CaseFactory(study=study, case_id="LATE", site=north)
    made = allocate_arriving_case(case=late)
    assert len(made) == 2
    # The third north case (C000, C002 came first) gets the arm at index 2 of north's sequence.
    assert made[0].arm.name == ProspectiveAllocator(study.seed, ["unassisted", "assisted"]).arm_for(
        "north", 2
    )
    assert allocate_arriving_case(case=late) == made  # idempotent
    loads = sorted(
        Assignment.objects.filter(session__study=study).values_list("reader__code", flat=True)
    )
    counts = [loads.count(code) for code in set(loads)]
    assert max(counts) - min(counts) <= 1


def test_arrival_before_randomization_waits_for_it():
    study = make_study(n_cases=2, n_readers=2, design="prospective")
    assert allocate_arriving_case(case=study.cases.first()) == []
    crossover = make_study(n_cases=2, n_readers=1)
    with pytest.raises(AllocationError, match="only prospective"):
        allocate_arriving_case(case=crossover.cases.first())


def test_randomize_command_reports_and_is_idempotent():
    study = make_study()
    out = StringIO()
    call_command("randomize", study.slug, stdout=out)
    assert "32 assignments" in out.getvalue()
    out2 = StringIO()
    call_command("randomize", study.slug, "--open", stdout=out2)
    assert "state open" in out2.getvalue()
    with pytest.raises(CommandError, match="no study"):
        call_command("randomize", "nope")


def test_study_without_readers_is_refused_with_a_clear_message():
    study = make_study(n_readers=0)
    with pytest.raises(AllocationError, match="no enrolled readers"):
        randomize_study(study=study)


def test_admin_action_randomizes_and_reports_the_fingerprint(client):
    from tests.factories import UserFactory

    study = make_study()
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/studies/study/",
        {"action": "randomize", "_selected_action": [study.pk]},
        follow=True,
    )
    record = AllocationRecord.objects.get(study=study)
    assert record.fingerprint in response.content.decode()
    listing = client.get("/admin/reading/allocationrecord/")
    assert listing.status_code == 200 and study.slug in listing.content.decode()


def test_admin_action_opens_a_randomized_study_and_refuses_an_unrandomized_one(client):
    from tests.factories import UserFactory

    study = make_study()
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))
    body = {"action": "open_for_reading", "_selected_action": [study.pk]}
    response = client.post("/admin/studies/study/", body, follow=True)
    study.refresh_from_db()
    assert study.state == "draft" and "has not been randomized" in response.content.decode()
    randomize_study(study=study)
    response = client.post("/admin/studies/study/", body, follow=True)
    study.refresh_from_db()
    assert study.state == "open" and study.protocol_version == 1
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"{study.slug}: open for reading"], messages


def test_admin_action_needs_the_change_permission(client):
    from tests.factories import UserFactory

    study = make_study()
    client.force_login(UserFactory(username="viewer", is_staff=True))
    response = client.post(
        "/admin/studies/study/", {"action": "randomize", "_selected_action": [study.pk]}
    )
    assert response.status_code == 403
    assert not AllocationRecord.objects.filter(study=study).exists()


def test_coordinator_sees_the_allocation_record_without_its_seed_and_cannot_change_it(
    client, roles
):
    from django.contrib.auth.models import Group

    from studyplatform.studies.concealment import seed_commitment
    from studyplatform.studies.models import MemberRole, StudyMembership
    from tests.factories import UserFactory

    study = make_study()
    randomize_study(study=study)
    coordinator = UserFactory(username="coord", is_staff=True)
    coordinator.groups.set([Group.objects.get(name="coordinator")])
    # The admin shows staff only the studies they are members of.
    StudyMembership.objects.create(study=study, user=coordinator, role=MemberRole.COORDINATOR)
    client.force_login(coordinator)
    listing = client.get("/admin/reading/allocationrecord/").content.decode()
    assert study.slug in listing and str(study.seed) not in listing
    assert seed_commitment(study.seed) in listing
    assignments = client.get("/admin/reading/assignment/").content.decode()
    assert "concealed until the study is locked" in assignments
    assert ">assisted<" not in assignments and ">unassisted<" not in assignments
    record = AllocationRecord.objects.get(study=study)
    page = client.get(f"/admin/reading/allocationrecord/{record.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'name="fingerprint"' not in html
    assert str(study.seed) not in html


def test_randomizing_and_opening_are_audited():
    from studyplatform.audit.models import AuditEvent

    study = make_study()
    record = randomize_study(study=study)
    randomize_study(study=study)  # verification only: no second event
    open_study(study=study)
    events = list(AuditEvent.objects.filter(study=study).order_by("sequence"))
    assert [e.action for e in events] == ["allocation.create", "protocol.freeze", "study.update"]
    assert all(e.after is not None for e in events)
    allocation, frozen, opened = (e.after or {} for e in events)
    assert allocation["fingerprint"] == record.fingerprint
    assert "seed" not in allocation  # only its commitment
    assert allocation["seed_sha256"] == hashlib.sha256(str(study.seed).encode()).hexdigest()
    assert frozen["version"] == 1
    assert opened["state"] == "open"


def _signed_locked_study(design: str = "crossover") -> Study:
    from tests.signing import sign_lock

    study = make_study(n_cases=4, design=design)
    randomize_study(study=study)
    open_study(study=study)
    sign_lock(study)
    return study


def _allocation_state(study: Study) -> tuple[list[tuple[int, int, int]], int]:
    from studyplatform.audit.models import AuditEvent

    rows = list(
        Assignment.objects.filter(session__study=study)
        .order_by("pk")
        .values_list("pk", "arm_id", "position")
    )
    return rows, AuditEvent.objects.count()


def test_randomize_command_on_a_locked_study_is_refused_and_changes_nothing(roles):
    study = _signed_locked_study()
    before = _allocation_state(study)
    with pytest.raises(CommandError, match=f"study {study.slug} is locked"):
        call_command("randomize", study.slug, "--replace", stdout=StringIO())
    with pytest.raises(CommandError, match="is locked"):
        call_command("randomize", study.slug, "--open", stdout=StringIO())
    assert _allocation_state(study) == before


def test_admin_randomize_action_on_a_locked_study_is_refused_with_a_message(client, roles):
    from tests.factories import UserFactory

    study = _signed_locked_study()
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)  # audited itself
    before = _allocation_state(study)
    client.force_login(admin)
    response = client.post(
        "/admin/studies/study/",
        {"action": "randomize", "_selected_action": [study.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert f"study {study.slug} is locked" in response.content.decode()
    assert _allocation_state(study) == before


def test_a_case_arriving_in_a_locked_prospective_study_is_not_allocated(roles):
    from studyplatform.studies.guards import StudyLockedError

    study = _signed_locked_study(design="prospective")
    # Stored before the lock, allocated after it (the allocation runs once the case commits).
    late = Case.objects.create(study=study, case_id="LATE", site=study.cases.first().site)
    before = _allocation_state(study)
    with pytest.raises(StudyLockedError, match="is locked"):
        allocate_arriving_case(case=late)
    assert _allocation_state(study) == before
