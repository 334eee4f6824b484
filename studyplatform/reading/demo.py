"""Reading for the demo study: randomized, opened, and one reader's washout waived."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from studyplatform.audit.models import Action
from studyplatform.audit.services import record as audit_record
from studyplatform.prereads.models import PreReadFinding
from studyplatform.prereads.selectors import pinned_model
from studyplatform.reading.models import (
    AllocationRecord,
    Assignment,
    Read,
    Reader,
    ReadFinding,
    ReadingSession,
    ReadTelemetry,
)
from studyplatform.reading.rating import MIDPOINT
from studyplatform.reading.services import (
    open_study,
    randomize_study,
    waive_training,
    waive_washout,
)
from studyplatform.reading.training import has_training
from studyplatform.studies.lesions import has_lesions
from studyplatform.studies.models import Image, MemberRole, Study, StudyMembership, Truth

SIMULATED_READERS = ("R02", "R03", "R04")
"""Demo readers whose reads ``--simulate-reads`` fills in, as if the trial had already run.

Their training is waived by the demo coordinator (a simulated reader has nothing to learn);
R01, left to a person, trains on the demo's training cases before session 1."""

TRAINING_WAIVER_REASON = "demo: a simulated reader"
EARLY_READERS = ("R01",)
"""Demo readers whose washout is waived, so that one account can read both sessions today."""

WAIVER_REASON = "demo: one account reads both sessions today"
LEAD_DAYS = 4
"""The demo study opened ``washout_days + LEAD_DAYS`` days ago: room for a past session 1, the
washout, and a past session 2 of the simulated readers."""


def start_demo_reading(
    *, study: Study, early_readers: Iterable[str] = EARLY_READERS
) -> AllocationRecord:
    """Randomize the demo study from its seed, open it in the past, waive some readers' washout.

    The demo model must be pinned first (``run_demo_prereads`` does): the assisted arm needs it.

    The study is opened and then placed ``washout_days + LEAD_DAYS`` days in the past, with each
    session ``k`` scheduled ``(k - 1) * washout_days`` after that, so the simulated readers'
    timeline is one a real trial could have had. Reader R01 (left to a person) gets an explicit,
    audited waiver from the demo coordinator: once R01 finishes session 1, session 2 opens at
    once instead of after the washout.
    """
    with transaction.atomic():
        record = randomize_study(study=study)
        open_study(study=study)
        opened = timezone.now() - timedelta(days=study.washout_days + LEAD_DAYS)
        Study.objects.filter(pk=study.pk).update(opened_at=opened)
        study.opened_at = opened
        for session in ReadingSession.objects.filter(study=study, number__gt=1):
            session.available_from = opened + timedelta(
                days=(session.number - 1) * study.washout_days
            )
            session.save(update_fields=["available_from"])
        audit_record(
            actor=None,
            action=Action.STUDY_UPDATE,
            obj=study,
            after={"opened_at": opened},
            reason="demo: the study's timeline is placed in the past",
        )
        coordinator = (
            StudyMembership.objects.filter(study=study, role=MemberRole.COORDINATOR)
            .select_related("user")
            .order_by("pk")
            .first()
        )
        if coordinator is None:
            raise ValueError("the demo study needs a coordinator to waive a washout")
        for session in ReadingSession.objects.filter(
            study=study, reader__code__in=list(early_readers), number__gt=1
        ).select_related("study", "reader"):
            waive_washout(session=session, user=coordinator.user, reason=WAIVER_REASON)
        trainees = Reader.objects.filter(code__in=SIMULATED_READERS, enrolments__study=study)
        for reader in trainees.order_by("code") if has_training(study.pk) else ():
            waive_training(
                study=study, reader=reader, user=coordinator.user, reason=TRAINING_WAIVER_REASON
            )
    return record


def simulate_demo_reads(
    *, study: Study, seed: int, readers: Iterable[str] = SIMULATED_READERS
) -> int:
    """Write plausible, reproducible reads for every assignment of some demo readers.

    Each simulated reader rates a case on a binormal scale: a latent score with mean
    ``skill`` for present findings and 0 for absent ones, plus case and reader noise. In the
    assisted arm the reader leans on the AI by adding a fraction of the pre-read's logit, so the
    analysis has a real (if synthetic) effect to find. Confidence is the logistic of the score
    on 0-100; the call is confidence >= 50. Where the truth holds lesion locations (the demo's
    nodules), a reader who calls the finding present marks it (:func:`_demo_marks`): near the
    lesion when they found it, more often with the AI, and now and then a false mark
    elsewhere, fewer with the AI, so the FROC analysis has marks to score. Reads are timed in
    the past, as a trial could have run: session 1 starts an hour after the study opened,
    session 2 an hour after the later of its scheduled date and session 1's completion plus the
    washout. Each read is audited as a submission (``read.submit``), its reason saying it was
    simulated.
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
    lesions: dict[tuple[int, int], list[dict[str, Any]]] = {
        (case_id, ft_id): location
        for case_id, ft_id, location in Truth.objects.filter(
            case__study=study, present=True
        ).values_list("case_id", "finding_type_id", "location")
        if has_lesions(location) and isinstance(location, list)
    }
    located = {ft_id for _, ft_id in lesions}
    sizes = {
        case_id: (rows, columns)
        for case_id, rows, columns in Image.objects.filter(
            case__study=study, position=1
        ).values_list("case_id", "rows", "columns")
    }
    mark_rng = np.random.default_rng([seed, 8])  # its own stream: the ratings stay as they were
    telemetry_rng = np.random.default_rng([seed, 9])  # its own stream too
    series_sizes: dict[int, dict[int, int]] = {}
    for case_id, series in Image.objects.filter(case__study=study).values_list(
        "case_id", "series__position"
    ):
        sizes_of = series_sizes.setdefault(case_id, {})
        sizes_of[series] = sizes_of.get(series, 0) + 1
    case_effect = {
        (case_id, ft.pk): rng.normal(0.0, 0.6)
        for case_id in sorted({a.case_id for a in assignments})
        for ft in finding_types
    }
    skill = {code: rng.normal(1.6, 0.3) for code in readers}
    opened = study.opened_at or timezone.now()
    scheduled = dict(ReadingSession.objects.filter(study=study).values_list("pk", "available_from"))
    reads: list[Read] = []
    findings: list[list[ReadFinding]] = []
    clock: dict[tuple[str, int], datetime] = {}
    first: dict[tuple[str, int], datetime] = {}
    for assignment in assignments:
        code, number = assignment.reader.code, assignment.session.number
        key = (code, number)
        if key not in clock:
            # Session 1 an hour after opening; session k an hour after the later of its scheduled
            # date and the reader's completion of session k - 1 plus the washout.
            begin = scheduled.get(assignment.session_id) or opened
            if (code, number - 1) in clock:
                after = clock[(code, number - 1)] + timedelta(days=study.washout_days)
                begin = max(begin, after)
            first[key] = begin + timedelta(hours=1)
        started = clock.get(key, first[key])
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
            marks = (
                _demo_marks(
                    mark_rng,
                    lesions.get((assignment.case_id, ft.pk), []),
                    sizes[assignment.case_id],
                    confidence=confidence,
                    assisted=assignment.arm.shows_ai,
                )
                if ft.pk in located and confidence >= MIDPOINT and assignment.case_id in sizes
                else []
            )
            answers.append(
                # The call follows the rating, so no simulated read contradicts it.
                ReadFinding(
                    finding_type=ft,
                    present=confidence >= MIDPOINT,
                    confidence=confidence,
                    marks=marks,
                )
            )
        findings.append(answers)
    codes = {ft.pk: ft.code for ft in finding_types}
    with transaction.atomic():
        Read.objects.bulk_create(reads)  # sets primary keys on PostgreSQL and SQLite
        for read, answers in zip(reads, findings, strict=True):
            for answer in answers:
                answer.read = read
        ReadFinding.objects.bulk_create([a for answers in findings for a in answers])
        ReadTelemetry.objects.bulk_create(
            _demo_telemetry(
                telemetry_rng,
                read,
                series_sizes.get(assignment.case_id, {}),
                assisted=assignment.arm.shows_ai,
            )
            for assignment, read in zip(assignments, reads, strict=True)
        )
        for assignment, read in zip(assignments, reads, strict=True):
            assignment.opened_at = read.started_at
        Assignment.objects.bulk_update(assignments, ["opened_at"])
        for (code, number), finished in clock.items():
            ReadingSession.objects.filter(study=study, reader__code=code, number=number).update(
                started_at=first[(code, number)], completed_at=finished
            )
        # Each simulated read is audited like a reader's submission (same action and shape).
        for assignment, read, answers in zip(assignments, reads, findings, strict=True):
            audit_record(
                actor=assignment.reader.user,
                action=Action.READ_SUBMIT,
                obj=read,
                study=study,
                after={
                    "assignment": assignment.pk,
                    "started_at": read.started_at,
                    "submitted_at": read.submitted_at,
                    "free_text": read.free_text,
                    "findings": {
                        codes[a.finding_type_id]: {
                            "present": a.present,
                            "confidence": a.confidence,
                            "marks": a.marks,
                        }
                        for a in answers
                    },
                },
                reason="demo: simulated read, not a reader's answers",
            )
    return len(reads)


def _demo_telemetry(
    rng: np.random.Generator, read: Read, sizes: dict[int, int], *, assisted: bool
) -> ReadTelemetry:
    """Plausible telemetry of a simulated read: most of the read's time on screen, split over
    the series by their slices; a contiguous run of each stack's slices shown (most of it);
    in the assisted arm the overlay on in four reads of five, for part of the time, and the AI
    first seen within seconds."""
    duration = read.duration_s
    on_screen = duration * float(rng.uniform(0.7, 0.95))
    total = sum(sizes.values()) or 1
    series: list[dict[str, Any]] = []
    viewed = 0
    for position, n in sorted(sizes.items()):
        shown = n if n == 1 else int(np.clip(round(n * rng.beta(6, 2)), 1, n))
        start = int(rng.integers(1, n - shown + 2))
        viewed += shown
        series.append({
            "series": position, "slices_total": n,
            "slices_viewed": list(range(start, start + shown)),
            "time_s": round(on_screen * n / total, 3),
        })  # fmt: skip
    overlay = assisted and bool(rng.random() < 0.8)
    overlay_s = round(on_screen * float(rng.uniform(0.2, 0.9)), 3) if overlay else 0.0
    first = round(float(rng.uniform(0.5, min(5.0, duration))), 3) if assisted else None
    return ReadTelemetry(
        read=read,
        series=series,
        slices_viewed=viewed,
        slices_total=sum(sizes.values()),
        series_time_s=round(sum(float(s["time_s"]) for s in series), 3),
        ai_panel_shown=assisted,
        ai_overlay_on=overlay,
        ai_overlay_s=overlay_s,
        ai_first_view_s=first,
    )


def _demo_marks(
    rng: np.random.Generator,
    lesions: list[dict[str, Any]],
    size: tuple[int, int],
    *,
    confidence: int,
    assisted: bool,
) -> list[dict[str, int]]:
    """The marks of a simulated reader who called the finding present.

    Each lesion is found (marked within its radius, at the read's confidence) with probability
    0.7 unassisted and 0.9 with the AI; a missed lesion's mark lands elsewhere. A case without
    lesions gets one mark somewhere. Then a false mark with its own, lower confidence, with
    probability 0.3 unassisted and 0.15 with the AI.
    """
    rows, columns = size

    def anywhere() -> dict[str, int]:
        y, x = rng.uniform(0.15, 0.85, size=2) * (rows, columns)
        return {"image": 1, "x": int(x), "y": int(y)}

    marks = [] if lesions else [anywhere()]
    for lesion in lesions:
        if rng.random() < (0.9 if assisted else 0.7):
            reach = 0.6 * float(lesion["radius"])
            dx, dy = np.clip(rng.normal(0.0, reach / 2, size=2), -reach / 1.5, reach / 1.5)
            x = min(max(round(float(lesion["x"]) + dx), 0), columns - 1)
            y = min(max(round(float(lesion["y"]) + dy), 0), rows - 1)
            marks.append({"image": int(lesion["image"]), "x": x, "y": y})
        else:
            marks.append(anywhere())
    if rng.random() < (0.15 if assisted else 0.3):
        marks.append(anywhere() | {"confidence": max(0, confidence - int(rng.integers(10, 40)))})
    return marks
