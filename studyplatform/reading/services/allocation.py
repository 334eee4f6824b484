"""Randomizing a study, opening it for reading, and allocating prospectively arriving cases.

The pure randomizer (``studyplatform.studies.randomization``) decides; these use cases feed it the
study's cases, truth, readers and arms, store its answer as ReadingSession and Assignment rows in
one transaction before reading starts, and keep the allocation's fingerprint, so that anyone can
later regenerate the allocation from the seed and compare two hex strings.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.prereads.selectors import PinnedModelError, pinned_model
from studyplatform.reading.models import (
    AllocationRecord,
    Assignment,
    Enrolment,
    ReadingSession,
)
from studyplatform.reading.services.errors import AllocationError
from studyplatform.studies.concealment import arm_commitment, seed_commitment
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Arm, Case, Design, Study, StudyState, Truth
from studyplatform.studies.randomization import (
    Allocation,
    AllocationRow,
    CaseInfo,
    ProspectiveAllocator,
    allocate,
    assign_readers,
    plan_split_plot,
)
from studyplatform.studies.services.protocol import freeze_protocol

__all__ = [
    "allocate_arriving_case",
    "case_infos",
    "open_study",
    "randomize_study",
    "stored_allocation",
    "verify_allocation",
]


def case_infos(study: Study) -> list[CaseInfo]:
    """The study's cases as the randomizer sees them: ID, site code and a per-finding truth key.

    The truth key lists every finding type of the study in its order with 1 (present), 0 (absent)
    or ? (no truth recorded), e.g. ``nodule=1,pneumothorax=0,effusion=?``; cases are balanced
    between arms within each (truth key, site) stratum.
    """
    codes = list(study.finding_types.order_by("order", "code").values_list("code", flat=True))
    truth: dict[int, dict[str, bool]] = defaultdict(dict)
    for case_pk, code, present in Truth.objects.filter(
        case__study=study, case__training=False
    ).values_list("case_id", "finding_type__code", "present"):
        truth[case_pk][code] = present
    infos = []
    analysed = study.cases.filter(training=False)
    for pk, case_id, site in analysed.values_list("pk", "case_id", "site__code"):
        calls = truth.get(pk, {})
        key = ",".join(f"{code}={'?' if code not in calls else int(calls[code])}" for code in codes)
        infos.append(CaseInfo(case_id=case_id, site=site, truth_key=key or "none"))
    return infos


def _arms(study: Study) -> list[Arm]:
    arms = list(study.arms.order_by("order", "name"))
    if len(arms) < 2:
        raise AllocationError(f"study {study.slug!r} needs at least two arms, has {len(arms)}")
    return arms


def _reader_codes(study: Study) -> dict[str, Enrolment]:
    enrolments = {e.reader.code: e for e in study.enrolments.select_related("reader")}
    if not enrolments:
        raise AllocationError(f"study {study.slug!r} has no enrolled readers")
    return enrolments


def stored_allocation(study: Study) -> Allocation:
    """Rebuild the randomizer's value from the stored Assignment rows (any order)."""
    record = AllocationRecord.objects.get(study=study)
    rows = [
        AllocationRow(reader, case_id, arm, session, position, step)
        for reader, case_id, arm, session, position, step in Assignment.objects.filter(
            session__study=study, session__training=False
        ).values_list(
            "reader__code", "case__case_id", "arm__name", "session__number", "position", "step"
        )
    ]
    return Allocation(record.design, record.seed, tuple(record.arms), tuple(rows))


def verify_allocation(study: Study) -> str:
    """Check the stored rows against the recorded fingerprint; return the fingerprint.

    Raises AllocationError when the study was never randomized or a row was changed.
    """
    record = AllocationRecord.objects.filter(study=study).first()
    if record is None:
        raise AllocationError(f"study {study.slug!r} has not been randomized")
    if record.design == Design.PROSPECTIVE:
        return record.fingerprint
    stored = stored_allocation(study).fingerprint()
    if stored != record.fingerprint:
        raise AllocationError(
            f"the stored allocation of {study.slug!r} fingerprints to {stored[:12]}..., not the "
            f"recorded {record.fingerprint[:12]}...: assignments were changed after randomization"
        )
    return stored


def randomize_study(
    *, study: Study, actor: User | None = None, replace: bool = False
) -> AllocationRecord:
    """Allocate the study from its seed and store sessions and assignments (idempotent).

    Running it again when an allocation exists regenerates the allocation from the seed and
    checks that it fingerprints to the stored one, changing nothing. If the cases, readers or
    arms changed since (the fingerprints differ), the draft study's allocation is rebuilt only
    with ``replace=True``. Once the study is open, the allocation cannot be redone; a locked study
    refuses the call (``StudyLockedError``).
    """
    with transaction.atomic():
        # Exclusive: two randomizations of one study must not interleave.
        study = lock_study_for_write(study, exclusive=True)
        record = AllocationRecord.objects.filter(study=study).first()
        if study.state != StudyState.DRAFT:
            if record is None:
                raise AllocationError(
                    f"study {study.slug!r} is {study.state} but was never randomized"
                )
            verify_allocation(study)
            if replace:
                raise AllocationError(
                    f"study {study.slug!r} is {study.state}: its allocation cannot be changed"
                )
            return record
        arms = _arms(study)
        enrolments = _reader_codes(study)
        if study.design == Design.PROSPECTIVE:
            if record is not None:
                return record
            return _randomize_prospective(study, arms, enrolments, actor)
        infos = case_infos(study)
        if not infos:
            raise AllocationError(f"study {study.slug!r} has no cases to allocate")
        groups = study.split_plot_groups if study.design == Design.SPLIT_PLOT else None
        fixed = _formed_groups(enrolments, groups) if groups is not None else None
        try:
            allocation = allocate(
                study.design,
                seed=study.seed,
                cases=infos,
                readers=list(enrolments),
                arms=[arm.name for arm in arms],
                groups=groups,
                fixed_groups=fixed,
            )
        except ValueError as error:
            raise AllocationError(f"study {study.slug!r}: {error}") from None
        fingerprint = allocation.fingerprint()
        if record is not None:
            if record.fingerprint == fingerprint and verify_allocation(study) == fingerprint:
                return record
            if not replace:
                raise AllocationError(
                    f"study {study.slug!r} already has an allocation ({record.fingerprint[:12]}"
                    f"...) and its cases, readers or arms have changed since (the seed now gives "
                    f"{fingerprint[:12]}...); rerun with --replace to discard it while the study "
                    "is a draft"
                )
            _discard(study)
        if groups is not None:
            plan = plan_split_plot(
                seed=study.seed,
                cases=infos,
                readers=list(enrolments),
                groups=groups,
                fixed_groups=fixed,
            )
            for number, members in enumerate(plan.groups, start=1):
                for code in members:
                    enrolments[code].group = number
                    enrolments[code].save(update_fields=["group"])
        replaced = record.fingerprint if record is not None else None
        _store(study, allocation, arms, enrolments)
        created = AllocationRecord.objects.create(
            study=study,
            design=study.design,
            seed=study.seed,
            arms=list(allocation.arms),
            fingerprint=fingerprint,
            rows=len(allocation.rows),
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action=Action.ALLOCATION_CREATE,
            obj=created,
            study=study,
            before={"fingerprint": replaced} if replaced else None,
            after=_summary(created),
            reason="replaced: cases, readers or arms changed" if replaced else "",
        )
        return created


def _formed_groups(enrolments: dict[str, Enrolment], groups: int) -> list[list[str]] | None:
    """The split-plot groups as the enrolments hold them, when every reader has one in 1..groups.

    The coordinators may form the groups before randomization (e.g. readers of one site
    together); a reader without a group, or a group out of range, means the groups were not all
    formed by hand, and randomization draws every group from the seed. After a randomization the
    enrolments hold its groups, so running it again reproduces the same allocation.
    """
    formed: list[list[str]] = [[] for _ in range(groups)]
    for code, enrolment in enrolments.items():
        if enrolment.group is None or not 1 <= enrolment.group <= groups:
            return None
        formed[enrolment.group - 1].append(code)
    return formed


def _summary(record: AllocationRecord) -> dict[str, object]:
    # The seed stays concealed until lock: the trail records its commitment, checked when the
    # lock or an unblinding reveals it.
    return {
        "design": record.design,
        "seed_sha256": seed_commitment(record.seed),
        "arms": record.arms,
        "fingerprint": record.fingerprint,
        "rows": record.rows,
    }


def _discard(study: Study) -> None:
    # The readers' training sessions are not part of the allocation: they stay.
    Assignment.objects.filter(session__study=study, session__training=False).delete()
    ReadingSession.objects.filter(study=study, training=False).delete()
    AllocationRecord.objects.filter(study=study).delete()


def _store(
    study: Study, allocation: Allocation, arms: list[Arm], enrolments: dict[str, Enrolment]
) -> None:
    arm_by_name = {arm.name: arm for arm in arms}
    case_by_id = dict(study.cases.values_list("case_id", "pk"))
    session_keys = sorted({(row.reader, row.session) for row in allocation.rows})
    sessions = ReadingSession.objects.bulk_create(
        [
            ReadingSession(study=study, reader=enrolments[code].reader, number=number)
            for code, number in session_keys
        ]
    )
    session_by_key = dict(zip(session_keys, sessions, strict=True))
    Assignment.objects.bulk_create(
        [
            Assignment(
                session=session_by_key[(row.reader, row.session)],
                reader=enrolments[row.reader].reader,
                case_id=case_by_id[row.case_id],
                arm=arm_by_name[row.arm],
                position=row.position,
                step=row.step,
            )
            for row in allocation.rows
        ],
        batch_size=2000,
    )


def _randomize_prospective(
    study: Study, arms: list[Arm], enrolments: dict[str, Enrolment], actor: User | None
) -> AllocationRecord:
    """One open-ended session per reader; cases already there are allocated in arrival order."""
    ReadingSession.objects.bulk_create(
        [ReadingSession(study=study, reader=e.reader, number=1) for e in enrolments.values()]
    )
    record = AllocationRecord.objects.create(
        study=study,
        design=study.design,
        seed=study.seed,
        arms=[arm.name for arm in arms],
        fingerprint="",
        created_by=actor,
    )
    arrived = study.cases.filter(training=False).select_related("site")
    for case in arrived.order_by("arrived_at", "case_id"):
        _allocate_case(study, case, record)
    record.rows = Assignment.objects.filter(session__study=study, session__training=False).count()
    record.save(update_fields=["rows"])
    audit_record(
        actor=actor,
        action=Action.ALLOCATION_CREATE,
        obj=record,
        study=study,
        after=_summary(record),
    )
    return record


def open_study(*, study: Study, actor: User | None = None) -> Study:
    """Move a randomized draft study to open: reading may start, the allocation is frozen.

    Refused when an arm shows the AI and the study pins no model, or when the pinned model is
    not registered with the pinned sha256.

    Session ``k`` of every reader becomes available ``(k - 1) * washout_days`` after opening
    (and, once the reader finishes session ``k - 1``, no earlier than that plus the washout).
    """
    with transaction.atomic():
        study = lock_study_for_write(study, exclusive=True)
        if study.state != StudyState.DRAFT:
            raise AllocationError(f"study {study.slug!r} is already {study.state}")
        verify_allocation(study)
        _check_pinned_model(study)
        now = timezone.now()
        study.state = StudyState.OPEN
        study.opened_at = now
        study.save(update_fields=["state", "opened_at"])
        freeze_protocol(study=study, actor=actor)
        for session in ReadingSession.objects.filter(study=study, training=False, number__gt=1):
            session.available_from = now + timedelta(days=(session.number - 1) * study.washout_days)
            session.save(update_fields=["available_from"])
        audit_record(
            actor=actor,
            action=Action.STUDY_UPDATE,
            obj=study,
            before={"state": StudyState.DRAFT},
            after={"state": study.state, "opened_at": now},
            reason="opened for reading",
        )
        return study


def _check_pinned_model(study: Study) -> None:
    """An arm that shows the AI needs a pinned model, registered with the pinned file."""
    assisted = list(study.arms.filter(shows_ai=True).values_list("name", flat=True))
    if assisted and not study.has_pinned_model:
        raise AllocationError(
            f"study {study.slug!r} has an arm that shows the AI ({', '.join(assisted)}) but pins "
            "no AI model: pin a registered model version before opening it"
        )
    try:
        pinned_model(study)
    except PinnedModelError as error:
        raise AllocationError(f"{error}: the study cannot open") from None


def allocate_arriving_case(*, case: Case) -> list[Assignment]:
    """Randomize one arriving case of a prospective study to an arm and to readers.

    The arm is the ``index``-th of the site's permuted-block sequence, where ``index`` counts the
    site's cases allocated before; the readers are the least loaded of the pool. A locked study
    refuses (``StudyLockedError``). Idempotent: a
    case already allocated returns its assignments. Returns ``[]`` (and allocates nothing) while
    the study has not been randomized yet: ``randomize_study`` then allocates it in arrival order.
    """
    with transaction.atomic():
        # Exclusive: arrivals are numbered per site, so two of them must not interleave.
        study = lock_study_for_write(case.study_id, exclusive=True)
        if study.design != Design.PROSPECTIVE:
            raise AllocationError(
                f"study {study.slug!r} has a fixed {study.design} allocation; only prospective "
                "studies allocate cases on arrival"
            )
        record = AllocationRecord.objects.filter(study=study).first()
        if record is None:
            return []
        case = Case.objects.select_related("site").get(pk=case.pk)
        if case.training:
            return []  # a training case is never randomized
        already = Assignment.objects.filter(case=case).exists()
        assignments = _allocate_case(study, case, record)
        if not already:
            record.rows = Assignment.objects.filter(
                session__study=study, session__training=False
            ).count()
            record.save(update_fields=["rows"])
            audit_record(
                actor=None,
                action=Action.ALLOCATION_CREATE,
                obj=case,
                study=study,
                after={
                    "case": case.case_id,
                    # Concealed: a commitment keyed by the seed, checkable once it is revealed.
                    "arm_hmac": (
                        arm_commitment(study.seed, case.case_id, assignments[0].arm.name)
                        if assignments
                        else None
                    ),
                    "readers": sorted(a.reader.code for a in assignments),
                },
                reason="prospective arrival",
            )
        return assignments


def _allocate_case(study: Study, case: Case, record: AllocationRecord) -> list[Assignment]:
    existing = list(Assignment.objects.filter(case=case))
    if existing:
        return existing
    index = (
        Assignment.objects.filter(
            session__study=study, session__training=False, case__site=case.site
        )
        .values("case")
        .distinct()
        .count()
    )
    arm_name = ProspectiveAllocator(study.seed, record.arms).arm_for(case.site.code, index)
    arm = Arm.objects.get(study=study, name=arm_name)
    sessions = {
        s.reader.code: s
        for s in ReadingSession.objects.filter(
            study=study, training=False, number=1
        ).select_related("reader")
    }
    loads = {
        code: count
        for code, count in Assignment.objects.filter(
            session__study=study, session__training=False, reads__isnull=True
        )
        .values_list("reader__code")
        .annotate(n=Count("pk"))
    }
    chosen = assign_readers(
        study.seed, case.case_id, sessions, min(study.readers_per_case, len(sessions)), loads
    )
    created = []
    for code in chosen:
        session = sessions[code]
        last = session.assignments.aggregate(last=Max("position"))["last"] or 0
        created.append(
            Assignment.objects.create(
                session=session, reader=session.reader, case=case, arm=arm, position=last + 1
            )
        )
    return created
