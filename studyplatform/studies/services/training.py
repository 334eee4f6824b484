"""Marking a study's training cases: read by every reader to learn the viewer, never analysed."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from studyplatform.audit.models import Action
from studyplatform.audit.services import record
from studyplatform.studies.guards import lock_study_for_write
from studyplatform.studies.models import Study, StudyState

__all__ = ["TrainingCasesError", "set_training_cases"]


class TrainingCasesError(Exception):
    """The training cases cannot be changed as asked; the message names the cases and why."""


def set_training_cases(
    *, study: Study, case_ids: Iterable[str], actor: AbstractBaseUser | None
) -> tuple[list[str], list[str]]:
    """Make exactly ``case_ids`` the study's training cases; return (marked, unmarked) IDs.

    Only while the study is a draft (its protocol, and which cases are analysed, freeze at
    open), and only for cases no reader has been given yet: a case in the allocation, or one a
    reader has started training on, keeps its role. Unknown case IDs refuse the whole change.
    Audited; a no-op records nothing.
    """
    wanted = {case_id.strip() for case_id in case_ids if case_id.strip()}
    with transaction.atomic():
        study = lock_study_for_write(study)
        if study.state != StudyState.DRAFT:
            raise TrainingCasesError(
                f"study {study.slug} is {study.state}: training cases are chosen while it is a "
                "draft, because which cases are analysed froze when it opened"
            )
        cases = {c.case_id: c for c in study.cases.order_by("case_id")}
        unknown = sorted(wanted - set(cases))
        if unknown:
            raise TrainingCasesError(f"no such case(s) in {study.slug}: {', '.join(unknown)}")
        changed = [c for c in cases.values() if c.training != (c.case_id in wanted)]
        in_use = sorted(c.case_id for c in changed if c.assignments.exists())
        if in_use:
            raise TrainingCasesError(
                f"case(s) {', '.join(in_use)} already have readers' assignments (the allocation "
                "or a reader's training): randomize again without them, or keep their role"
            )
        marked = [c.case_id for c in changed if not c.training]
        unmarked = [c.case_id for c in changed if c.training]
        if not changed:
            return [], []
        study.cases.filter(case_id__in=marked).update(training=True)
        study.cases.filter(case_id__in=unmarked).update(training=False)
        record(
            actor=actor,
            action=Action.TRAINING_CASES,
            object_type="studies.case",
            study=study,
            before={"training": sorted(c.case_id for c in cases.values() if c.training)},
            after={"training": sorted(wanted), "marked": marked, "unmarked": unmarked},
        )
    return marked, unmarked
