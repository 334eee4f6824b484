"""Reading for the demo study: randomized, opened, and one reader's washout waived."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from studyplatform.audit.services import record as audit_record
from studyplatform.prereads.models import PreReadFinding
from studyplatform.prereads.selectors import pinned_model
from studyplatform.reading.models import (
    AllocationRecord,
    Assignment,
    Read,
    ReadFinding,
    ReadingSession,
)
from studyplatform.reading.rating import MIDPOINT
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Study, Truth

EARLY_READERS = ("R01",)
"""Demo readers whose later sessions open at once, so one account can try every session."""


def start_demo_reading(
    *, study: Study, early_readers: Iterable[str] = EARLY_READERS
) -> AllocationRecord:
    """Randomize the demo study from its seed, open it, and waive the washout for some readers.

    The demo model must be pinned first (``run_demo_prereads`` does): the assisted arm needs it.

    In a real study session 2 opens ``washout_days`` after session 1; in the demo, reader R01's
    later sessions are available at once (marked ``washout_waived``) so that one demo account can
    read both sessions of the crossover today.
    """
    with transaction.atomic():
        record = randomize_study(study=study)
        open_study(study=study)
        waived = ReadingSession.objects.filter(
            study=study, reader__code__in=list(early_readers), number__gt=1
        ).update(available_from=timezone.now(), washout_waived=True)
        audit_record(
            actor=None,
            action="session.washout_waived",
            object_type="reading.readingsession",
            study=study,
            after={"readers": sorted(early_readers), "sessions": waived},
            reason="demo: one account may read every session today",
        )
    return record


SIMULATED_READERS = ("R02", "R03", "R04")
"""Demo readers whose reads ``--simulate-reads`` fills in, as if the trial had already run."""


def simulate_demo_reads(
    *, study: Study, seed: int, readers: Iterable[str] = SIMULATED_READERS
) -> int:
    """Write plausible, reproducible reads for every assignment of some demo readers.

    Each simulated reader rates a case on a binormal scale: a latent score with mean
    ``skill`` for present findings and 0 for absent ones, plus case and reader noise. In the
    assisted arm the reader leans on the AI by adding a fraction of the pre-read's logit, so the
    analysis has a real (if synthetic) effect to find. Confidence is the logistic of the score
    on 0-100; the call is confidence >= 50. Reads are timed in the past: session 1 ends
    ``washout_days`` plus one day before session 2, which ends an hour ago. Reads bypass the
    reader's pages, so they are audited once here, as simulated.
    """
    rng = np.random.default_rng([seed, 7])
    readers = sorted(readers)
    assignments = list(
        Assignment.objects.filter(session__study=study, reader__code__in=readers)
        .select_related("session", "reader__user", "case", "arm")
        .order_by("reader__code", "session__number", "position", "step")
    )
    truth = {
        (case_id, ft_id): present
        for case_id, ft_id, present in Truth.objects.filter(case__study=study).values_list(
            "case_id", "finding_type_id", "present"
        )
    }
    ai = {
        (case_id, ft_id): probability
        for case_id, ft_id, probability in PreReadFinding.objects.filter(
            preread__case__study=study,
            preread__model=pinned_model(study),
            preread__status="done",
        ).values_list("preread__case_id", "finding_type_id", "probability")
    }
    finding_types = list(study.finding_types.order_by("order"))
    case_effect = {
        (case_id, ft.pk): rng.normal(0.0, 0.6)
        for case_id in sorted({a.case_id for a in assignments})
        for ft in finding_types
    }
    skill = {code: rng.normal(1.6, 0.3) for code in readers}
    now = timezone.now()
    session_end = {
        2: now - timedelta(hours=1),
        1: now - timedelta(hours=1, days=study.washout_days + 1),
    }
    reads: list[Read] = []
    findings: list[list[ReadFinding]] = []
    clock: dict[tuple[str, int], datetime] = {}
    for assignment in assignments:
        key = (assignment.reader.code, assignment.session.number)
        started = clock.get(
            key, session_end.get(assignment.session.number, now) - timedelta(hours=2)
        )
        duration = float(rng.lognormal(np.log(45.0), 0.35)) * (
            0.85 if assignment.arm.shows_ai else 1
        )
        submitted = started + timedelta(seconds=duration)
        clock[key] = submitted + timedelta(seconds=float(rng.uniform(3, 20)))
        reads.append(
            Read(
                assignment=assignment,
                free_text="",
                started_at=started,
                submitted_at=submitted,
                idempotency_key=f"simulated-{assignment.pk}",
                submitted_by=assignment.reader.user,
            )
        )
        answers = []
        for ft in finding_types:
            present = truth.get((assignment.case_id, ft.pk), False)
            score = (
                skill[assignment.reader.code] * present + case_effect[(assignment.case_id, ft.pk)]
            )
            score += rng.normal(0.0, 0.8) - 0.8
            probability = ai.get((assignment.case_id, ft.pk))
            if assignment.arm.shows_ai and probability is not None:
                p = min(max(probability, 1e-4), 1 - 1e-4)
                # Readers weigh the AI but do not copy it: its logit counts a quarter, capped.
                score += 0.25 * float(np.clip(np.log(p / (1 - p)), -2.0, 2.0))
            confidence = round(100 / (1 + float(np.exp(-score))))
            answers.append(
                # The call follows the rating, so no simulated read contradicts it.
                ReadFinding(finding_type=ft, present=confidence >= MIDPOINT, confidence=confidence)
            )
        findings.append(answers)
    with transaction.atomic():
        Read.objects.bulk_create(reads)  # sets primary keys on PostgreSQL and SQLite
        for read, answers in zip(reads, findings, strict=True):
            for answer in answers:
                answer.read = read
        ReadFinding.objects.bulk_create([a for answers in findings for a in answers])
        for assignment, read in zip(assignments, reads, strict=True):
            assignment.opened_at = read.started_at
        Assignment.objects.bulk_update(assignments, ["opened_at"])
        for (code, number), finished in clock.items():
            ReadingSession.objects.filter(study=study, reader__code=code, number=number).update(
                started_at=finished - timedelta(hours=2), completed_at=finished
            )
        audit_record(
            actor=None,
            action="read.simulate",
            object_type="reading.read",
            study=study,
            after={"readers": readers, "reads": len(reads)},
            reason="demo: simulated reads, not a reader's answers",
        )
    return len(reads)
