"""The three roles of the platform, as Django groups with permissions.

Roles say what kind of work a user does; which studies they may do it on is decided by
StudyMembership (staff) and Enrolment (readers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

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
_VIEW_ONLY_FOR_COORDINATORS: Final = {
    # The stored allocation's record (design, seed, fingerprint) is written by randomization only.
    "reading": ("read", "readfinding", "readdraft", "allocationrecord"),
    # The trial monitor's view: who changed what, and the signatures.
    "audit": ("auditevent", "signature"),
    # Inputs refused at import, recorded by the imports themselves.
    "studies": ("importrefusal",),
}


def _codes(models: Mapping[str, tuple[str, ...]], actions: tuple[str, ...]) -> set[tuple[str, str]]:
    return {
        (app, f"{action}_{model}")
        for app, names in models.items()
        for model in names
        for action in actions
    }


# A study's hanging protocols are layout data its coordinators maintain, rules added and removed.
_LAYOUT_MODELS: Final = {"studies": ("hangingprotocol", "hangingrule")}

ROLE_PERMISSIONS: Final[dict[str, frozenset[tuple[str, str]]]] = {
    READER: frozenset(),
    COORDINATOR: frozenset(
        _codes(_COORDINATED_MODELS, _MANAGE)
        | _codes(_LAYOUT_MODELS, (*_MANAGE, "delete"))
        | _codes(_VIEW_ONLY_FOR_COORDINATORS, ("view",))
        # Hospitals' arrival tokens: coordinators issue and revoke them; nobody else sees them.
        | _codes({"studies": ("sitetoken",)}, ("view", "change"))
        | {("studies", "lock_study"), ("studies", "view_analysis"), ("studies", "export_study")}
    ),
    STATISTICIAN: frozenset(
        _codes(_COORDINATED_MODELS, ("view",))
        | _codes(_LAYOUT_MODELS, ("view",))
        | _codes(_VIEW_ONLY_FOR_COORDINATORS, ("view",))
        | {("studies", "view_analysis"), ("studies", "export_study")}
    ),
}


def sync_roles(group_model: Any, permission_model: Any, *, missing_ok: bool = False) -> None:
    """Create the role groups and set exactly their permissions (idempotent).

    Takes the model classes so that the data migrations can pass their historical models; they
    pass ``missing_ok`` because a permission of an app migrated later does not exist yet (a
    later migration syncs again).
    """
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for app, codename in sorted(codes):
            found = permission_model.objects.filter(
                content_type__app_label=app, codename=codename
            ).first()
            if found is None and not missing_ok:
                raise LookupError(f"permission {app}.{codename} of role {role} does not exist")
            if found is not None:
                permissions.append(found)
        group.permissions.set(permissions)


def ensure_roles() -> None:
    """Make sure the role groups exist (after a database flush, say)."""
    from django.contrib.auth.models import Group, Permission

    sync_roles(Group, Permission)
