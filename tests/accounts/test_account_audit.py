"""Creating accounts, changing passwords and changing roles is audited, whoever does it.

Through the admin the event names the admin user; from the command line it names no one (the
system). No event holds a password hash.
"""

from __future__ import annotations

import getpass
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import verify_chain
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a long and unusual passphrase 7"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def events(user, action):
    return list(AuditEvent.objects.filter(object_id=str(user.pk), action=action))


def assert_no_hash_recorded(user):
    user.refresh_from_db()
    stored = json.dumps([[e.before, e.after, e.reason] for e in AuditEvent.objects.all()])
    assert user.password and user.password not in stored
    assert "md5$" not in stored and "pbkdf2" not in stored
    assert verify_chain().ok


def _change_form(user, **changes):
    data = {
        "username": user.username,
        "password": user.password,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_admin_add_user_is_recorded_under_the_admin_without_the_hash(admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {"username": "newbie", "usable_password": "true", "password1": PASSWORD,
         "password2": PASSWORD},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    user = User.objects.get(username="newbie")
    (event,) = events(user, Action.USER_CREATE)
    assert (event.actor_username, event.reason, event.object_type) == ("root", "admin", "auth.user")
    assert event.after == {
        "username": "newbie",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "password": "set",
    }
    assert_no_hash_recorded(user)


def test_admin_role_change_records_flags_and_groups(admin_client, roles):
    user = UserFactory(username="alice")
    coordinator = Group.objects.get(name="coordinator")
    url = reverse("admin:auth_user_change", args=[user.pk])

    response = admin_client.post(
        url, _change_form(user, is_staff="on", is_superuser="on", groups=[coordinator.pk])
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    (change,) = events(user, Action.USER_CHANGE)
    assert change.before == {"is_staff": False, "is_superuser": False}
    assert change.after == {"is_staff": True, "is_superuser": True}
    assert change.actor_username == "root"
    (groups,) = events(user, Action.USER_GROUPS_CHANGE)
    assert groups.after == {"groups": {"added": ["coordinator"]}}
    assert groups.actor_username == "root"

    response = admin_client.post(url, _change_form(user, is_active=None, groups=[]))

    assert response.status_code == 302
    assert events(user, Action.USER_CHANGE)[-1].after == {
        "is_active": False,
        "is_staff": False,
        "is_superuser": False,
    }
    assert events(user, Action.USER_GROUPS_CHANGE)[-1].after == {
        "groups": {"removed": ["coordinator"]}
    }
    assert_no_hash_recorded(user)


def test_admin_password_change_is_recorded_without_the_hash(admin_client):
    user = UserFactory(username="bob")
    old_hash = str(user.password)
    url = reverse("admin:auth_user_password_change", args=[user.pk])

    response = admin_client.post(
        url, {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    (event,) = events(user, Action.USER_PASSWORD_CHANGE)
    assert (event.before, event.after) == ({"password": "set"}, {"password": "changed"})
    assert event.actor_username == "root"
    assert old_hash not in json.dumps([event.before, event.after])
    assert_no_hash_recorded(user)


def test_staff_without_user_permissions_cannot_change_accounts_and_nothing_is_recorded(client):
    user = UserFactory(username="carol")
    client.force_login(UserFactory(username="staff", is_staff=True))
    before = AuditEvent.objects.count()

    response = client.post(
        reverse("admin:auth_user_change", args=[user.pk]), _change_form(user, is_superuser="on")
    )

    assert response.status_code == 403
    assert AuditEvent.objects.count() == before
    user.refresh_from_db()
    assert not user.is_superuser


def test_createsuperuser_is_recorded_as_the_system(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)

    call_command("createsuperuser", "--noinput", username="ops", email="ops@example.org")

    user = User.objects.get(username="ops")
    (event,) = events(user, Action.USER_CREATE)
    assert event.actor_id is None and event.actor_username == ""
    assert event.after == {**(event.after or {}), "is_superuser": True, "password": "set"}
    assert_no_hash_recorded(user)


def test_changepassword_command_is_recorded(monkeypatch):
    user = UserFactory(username="dave")
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": PASSWORD)

    call_command("changepassword", "dave")

    (event,) = events(user, Action.USER_PASSWORD_CHANGE)
    assert event.actor_id is None and event.after == {"password": "changed"}
    assert_no_hash_recorded(user)


def test_code_that_changes_accounts_is_recorded_from_either_side_of_a_relation(roles):
    user = User.objects.create_user("erin", password=PASSWORD)
    reader = Group.objects.get(name="reader")

    reader.user_set.add(user)
    user.user_permissions.add(Permission.objects.get(codename="view_study"))
    user.groups.clear()
    user.set_unusable_password()
    user.save()

    assert events(user, Action.USER_CREATE)[0].after["password"] == "set"  # type: ignore[index]
    assert [e.after for e in events(user, Action.USER_GROUPS_CHANGE)] == [
        {"groups": {"added": ["reader"]}},
        {"groups": {"removed": ["reader"]}},
    ]
    (permissions,) = events(user, Action.USER_PERMISSIONS_CHANGE)
    assert permissions.after == {"user_permissions": {"added": ["studies.view_study"]}}
    (password,) = events(user, Action.USER_PASSWORD_CHANGE)
    assert password.after == {"password": "unusable"}
    assert_no_hash_recorded(user)


def test_logging_in_records_the_log_in_but_no_account_change(client):
    UserFactory(username="frank", password=PASSWORD)
    before = AuditEvent.objects.count()

    response = client.post(reverse("login"), {"username": "frank", "password": PASSWORD})

    assert response.status_code == 302
    # The log-in itself is audited; the last_login it saves is not an account change.
    actions = list(AuditEvent.objects.filter(sequence__gt=before).values_list("action", flat=True))
    assert actions == [Action.USER_LOGIN]


def test_a_saved_but_unchanged_account_records_nothing():
    user = UserFactory(username="gina")
    before = AuditEvent.objects.count()

    user.first_name = "Gina"
    user.save()

    assert AuditEvent.objects.count() == before


def test_password_log_ins_and_refusals_are_audited(client):
    user = UserFactory(username="grace", password=PASSWORD)
    client.post(reverse("login"), {"username": "grace", "password": "not the password"})
    refused = AuditEvent.objects.get(action=Action.USER_LOGIN_REFUSED)
    assert refused.after == {"method": "password", "username": "grace", "ip": "127.0.0.1"}
    client.post(reverse("login"), {"username": "grace", "password": PASSWORD})
    login = AuditEvent.objects.get(action=Action.USER_LOGIN)
    assert login.actor_id == user.pk
    assert login.after == {"method": "password", "ip": "127.0.0.1"}


def test_admin_log_ins_are_audited_too(client):
    user = UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    response = client.post(reverse("admin:login"), {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    login = AuditEvent.objects.get(action=Action.USER_LOGIN)
    assert login.actor_id == user.pk
