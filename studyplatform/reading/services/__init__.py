"""The reading app's use cases (keyword-only, typed, each in a transaction).

- allocation: ``randomize_study``, ``open_study``, ``allocate_arriving_case``,
  ``verify_allocation``;
- reads: ``open_assignment``, ``save_draft``, ``submit_read``, ``correct_read``;
- washout: ``session_opening``, ``waive_washout``;
- concealment: ``unblind_study``;
- training: ``start_training``, ``waive_training``.
"""

from studyplatform.reading.services.allocation import (
    allocate_arriving_case,
    case_infos,
    open_study,
    randomize_study,
    stored_allocation,
    verify_allocation,
)
from studyplatform.reading.services.concealment import unblind_study
from studyplatform.reading.services.errors import (
    AllocationError,
    ContradictionError,
    CorrectionRefusedError,
    InvalidReadError,
    NotAvailableError,
    OutOfOrderError,
    ReadingError,
    StudyClosedError,
)
from studyplatform.reading.services.reads import (
    correct_read,
    open_assignment,
    save_draft,
    session_available,
    submit_read,
)
from studyplatform.reading.services.training import (
    TrainingError,
    start_training,
    waive_training,
)
from studyplatform.reading.services.washout import WaiverError, session_opening, waive_washout

__all__ = [
    "AllocationError",
    "ContradictionError",
    "CorrectionRefusedError",
    "InvalidReadError",
    "NotAvailableError",
    "OutOfOrderError",
    "ReadingError",
    "StudyClosedError",
    "TrainingError",
    "WaiverError",
    "allocate_arriving_case",
    "case_infos",
    "correct_read",
    "open_assignment",
    "open_study",
    "randomize_study",
    "save_draft",
    "session_available",
    "session_opening",
    "start_training",
    "stored_allocation",
    "submit_read",
    "unblind_study",
    "verify_allocation",
    "waive_training",
    "waive_washout",
]
