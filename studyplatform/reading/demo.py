"""Reading for the demo study: randomized, opened, and one reader's washout waived."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from studyplatform.audit.services import record as audit_record
from studyplatform.reading.models import AllocationRecord, ReadingSession
from studyplatform.reading.services import open_study, randomize_study
from studyplatform.studies.models import Study

EARLY_READERS = ("R01",)
"""Demo readers whose later sessions open at once, so one account can try every session."""


def start_demo_reading(
    *, study: Study, early_readers: Iterable[str] = EARLY_READERS
) -> AllocationRecord:
    """Randomize the demo study from its seed, open it, and waive the washout for some readers.

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
