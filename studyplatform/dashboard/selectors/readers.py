"""Which readers have finished: the complete-case set of the study's analysis."""

from __future__ import annotations

from studyplatform.reading.models import Assignment, Reader
from studyplatform.studies.models import Study


def complete_readers(study: Study) -> list[str]:
    """Codes of the study's readers with a submitted read for every one of their assignments.

    These are the readers who finished both arms: the protocol's complete-case analysis
    includes them only (a reader part-way is named in the report, with the reads they have).
    """
    # Training assignments are not the analysis': a reader's training does not count here.
    still_open = Assignment.objects.filter(
        session__study=study, session__training=False, reads__isnull=True
    )
    return sorted(
        Reader.objects.filter(
            assignments__session__study=study, assignments__session__training=False
        )
        .exclude(pk__in=still_open.values("reader_id"))
        .values_list("code", flat=True)
        .distinct()
    )
