"""Every change to an account's access is audited, whoever makes it.

Creating a user, changing or disabling a password, changing ``username``, ``is_active``,
``is_staff`` or ``is_superuser``, adding or removing groups (the roles) or permissions, and
deleting a user each append an audit event.

Why model signals, against the house rule of no logic in signals: accounts change through doors
the project does not own -- Django's ``createsuperuser`` and ``changepassword``, the admin's user
and password forms, ``User.objects.create_user`` in any script or shell, the demo builder. A
service would be skipped by every one of them; the model's own signals are the one place they all
pass. The hooks only record; they never change what is saved. Who acted is not visible to a model
signal, so a door that knows it says so with ``acting_as`` (the admin's ``UserAdmin``, the demo);
elsewhere the event has no actor, which the audit trail reads as the system (a command, a script).

What escapes: ``QuerySet.update()``, ``bulk_create()`` and raw SQL send no signals, and fixture
loading (``loaddata``, a raw save of stored rows) is not recorded; the project changes accounts
with none of them, and all need the operator's shell. Password hashes are never recorded, only
that the password changed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from studyplatform.audit.models import Action
from studyplatform.audit.services import record

# The fields that decide what an account may do (besides its groups and permissions).
WATCHED: tuple[str, ...] = ("username", "is_active", "is_staff", "is_superuser")


@dataclass(frozen=True)
class _Context:
    actor: AbstractBaseUser | AnonymousUser | None = None
    reason: str = ""


_context: contextvars.ContextVar[_Context | None] = contextvars.ContextVar(
    "account_change_context", default=None
)


@contextmanager
def acting_as(actor: AbstractBaseUser | AnonymousUser | None, reason: str = "") -> Iterator[None]:
    """Account changes made inside are recorded with this actor and reason."""
    token = _context.set(_Context(actor=actor, reason=reason))
    try:
        yield
    finally:
        _context.reset(token)


def password_state(encoded: str | None) -> str:
    """What may be said about a stored password: 'set', 'unusable' or 'none' (never the hash)."""
    if not encoded:
        return "none"
    return "unusable" if encoded.startswith(UNUSABLE_PASSWORD_PREFIX) else "set"


def _record(user: models.Model, action: str, before: Any = None, after: Any = None) -> None:
    context = _context.get() or _Context()
    record(
        actor=context.actor,
        action=action,
        obj=user,
        object_type="auth.user",
        before=before,
        after=after,
        reason=context.reason,
    )


def _access(user: Any) -> dict[str, Any]:
    return {field: getattr(user, field) for field in WATCHED}


def _before_save(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
    """Remember the stored access fields of an existing user (not the hash: only its state)."""
    instance._audit_stored = None
    update_fields = kwargs.get("update_fields")
    if kwargs.get("raw") or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & {*WATCHED, "password"}:
        return  # a log-in's last_login, say
    stored = sender._default_manager.filter(pk=instance.pk).values(*WATCHED, "password").first()
    if stored is not None:
        stored["password"] = password_state(stored["password"])
        instance._audit_stored = stored


def _after_save(sender: type[models.Model], instance: Any, created: bool, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    if created:
        _record(
            instance,
            Action.USER_CREATE,
            after={**_access(instance), "password": password_state(instance.password)},
        )
        return
    stored = getattr(instance, "_audit_stored", None)
    instance._audit_stored = None
    if stored is None:
        return
    now = _access(instance)
    changed = [field for field in WATCHED if stored[field] != now[field]]
    if changed:
        _record(
            instance,
            Action.USER_CHANGE,
            before={field: stored[field] for field in changed},
            after={field: now[field] for field in changed},
        )
    # set_password() keeps the raw password until the save ends; a hash upgrade at log-in
    # clears it first (it is not a change of password).
    state = password_state(instance.password)
    if instance._password is not None or state != stored["password"]:
        _record(
            instance,
            Action.USER_PASSWORD_CHANGE,
            before={"password": stored["password"]},
            after={"password": "changed" if state == "set" else state},
        )


def _after_delete(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
    _record(instance, Action.USER_DELETE, before=_access(instance))


def _names(model: type[models.Model], pks: set[Any]) -> list[str]:
    if model is Permission:
        return sorted(
            f"{app}.{code}"
            for app, code in Permission.objects.filter(pk__in=pks).values_list(
                "content_type__app_label", "codename"
            )
        )
    return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))


def _membership_changed(
    instance: Any,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set[Any] | None,
    *,
    field: str,
    audit_action: str,
) -> None:
    """Groups or permissions added to or removed from users, from either side of the relation."""
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    user_model = get_user_model()
    if reverse:  # group.user_set.add(user): ``instance`` is the group or permission
        target = type(instance)
        names = _names(target, {instance.pk})
        if action == "pre_clear":
            users = list(getattr(instance, f"{model._meta.model_name}_set").all())
        else:
            users = list(user_model._default_manager.filter(pk__in=pk_set or set()))
        by_user = [(user, names) for user in users]
    else:
        target = model
        if action == "pre_clear":
            pks = set(getattr(instance, field).values_list("pk", flat=True))
        else:
            pks = set(pk_set or set())
        by_user = [(instance, _names(target, pks))] if pks else []
    key = "added" if action == "post_add" else "removed"
    for user, changed in by_user:
        if changed:
            _record(user, audit_action, after={field: {key: changed}})


def _groups_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    model: Any,
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    _membership_changed(
        instance,
        action,
        reverse,
        model,
        pk_set,
        field="groups",
        audit_action=Action.USER_GROUPS_CHANGE,
    )


def _permissions_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    model: Any,
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    _membership_changed(
        instance,
        action,
        reverse,
        model,
        pk_set,
        field="user_permissions",
        audit_action=Action.USER_PERMISSIONS_CHANGE,
    )


def connect() -> None:
    """Called once from the accounts app's ``ready()``."""
    user_model = get_user_model()
    uid = "studyplatform.accounts.changes"
    pre_save.connect(_before_save, sender=user_model, dispatch_uid=f"{uid}.pre_save")
    post_save.connect(_after_save, sender=user_model, dispatch_uid=f"{uid}.post_save")
    post_delete.connect(_after_delete, sender=user_model, dispatch_uid=f"{uid}.post_delete")
    m2m_changed.connect(
        _groups_changed, sender=user_model.groups.through, dispatch_uid=f"{uid}.groups"
    )
    m2m_changed.connect(
        _permissions_changed,
        sender=user_model.user_permissions.through,
        dispatch_uid=f"{uid}.permissions",
    )
