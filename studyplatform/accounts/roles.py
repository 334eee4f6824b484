"""The three roles of the platform, as Django groups with permissions.

Roles say what kind of work a user does; which studies they may do it on is decided by
StudyMembership (staff) and Enrolment (readers).
"""

from __future__ import annotations

from typing import Final

READER: Final = "reader"
COORDINATOR: Final = "coordinator"
STATISTICIAN: Final = "statistician"
ROLES: Final = (READER, COORDINATOR, STATISTICIAN)

# (app_label, codename) per role. Readers get no admin permission at all: they work only in the
# reading pages, which check enrolment and assignment ownership themselves.
_MANAGE = ("add", "change", "view")
_COORDINATED_MODELS: Final = {
    "studies": ("site", "study", "arm", "findingtype", "case", "image", "truth", "studymembership"),
    "prereads": ("aimodel", "preread", "prereadfinding"),
    "reading": ("reader", "enrolment", "readingsession", "assignment"),
}
_VIEW_ONLY_FOR_COORDINATORS: Final = {"reading": ("read", "readfinding", "readdraft")}


def _codes(models: dict[str, tuple[str, ...]], actions: tuple[str, ...]) -> set[tuple[str, str]]:
    return {
        (app, f"{action}_{model}")
        for app, names in models.items()
        for model in names
        for action in actions
    }


ROLE_PERMISSIONS: Final[dict[str, frozenset[tuple[str, str]]]] = {
    READER: frozenset(),
    COORDINATOR: frozenset(
        _codes(_COORDINATED_MODELS, _MANAGE)
        | _codes(_VIEW_ONLY_FOR_COORDINATORS, ("view",))
        | {("studies", "lock_study"), ("studies", "view_analysis"), ("studies", "export_study")}
    ),
    STATISTICIAN: frozenset(
        _codes(_COORDINATED_MODELS, ("view",))
        | _codes(_VIEW_ONLY_FOR_COORDINATORS, ("view",))
        | {("studies", "view_analysis"), ("studies", "export_study")}
    ),
}
