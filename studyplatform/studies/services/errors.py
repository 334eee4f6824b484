"""Why an import was refused: every problem names the file or row and the reason."""

from __future__ import annotations

from collections.abc import Sequence

from studyplatform.studies.importing import Problem
from studyplatform.studies.models import Study


class ImportRefusedError(Exception):
    """A case (or a whole import) that is not stored; ``problems`` say which file and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class StudyLockedError(ImportRefusedError):
    pass


class CaseConflictError(ImportRefusedError):
    """The case ID is taken by a case with other images, site or truth."""


def refuse_locked(study: Study) -> None:
    if study.is_locked:
        raise StudyLockedError([Problem(study.slug, "the study is locked; it takes no new data")])
