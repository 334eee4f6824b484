"""The studies app's use cases (keyword-only, typed, each in a transaction).

- cases: ``import_case``, ``receive_case`` (the arrival API), ``import_cases`` (a folder);
- truth: ``import_truth``;
- tokens: ``issue_site_token``, ``authenticate_site_token``, ``claim_intake_request``.
"""

from studyplatform.studies.services.cases import (
    CaseImport,
    ImportReport,
    import_case,
    import_cases,
    receive_case,
)
from studyplatform.studies.services.errors import (
    CaseConflictError,
    ImportRefusedError,
)
from studyplatform.studies.services.slices import deid_salt
from studyplatform.studies.services.tokens import (
    authenticate_site_token,
    claim_intake_request,
    issue_site_token,
)
from studyplatform.studies.services.truth import TruthReport, import_truth

__all__ = [
    "CaseConflictError",
    "CaseImport",
    "ImportRefusedError",
    "ImportReport",
    "TruthReport",
    "authenticate_site_token",
    "claim_intake_request",
    "deid_salt",
    "import_case",
    "import_cases",
    "import_truth",
    "issue_site_token",
    "receive_case",
]
