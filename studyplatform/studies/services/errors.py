"""Why an import was refused: every problem names the file or row and the reason.

A study whose state forbids the change (locked, final truth) is refused by the guard instead:
``studyplatform.studies.guards.FrozenStudyError``.
"""

from __future__ import annotations

from collections.abc import Sequence

from studyplatform.studies.importing import Problem


class ImportRefusedError(Exception):
    """A case (or a whole import) that is not stored; ``problems`` say which file and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class CaseConflictError(ImportRefusedError):
    """The case ID is taken by a case with other images, site or truth."""
