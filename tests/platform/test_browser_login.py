"""Every demo account logs in through the real login page in headless Chromium."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from studyplatform.accounts.roles import ROLES
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("role", ROLES)
def test_user_of_each_role_logs_in_and_sees_their_role(role, roles, live_server, page):
    user = UserFactory(username=f"{role}-user", is_staff=role != "reader")
    user.groups.set([Group.objects.get(name=role)])

    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("#id_username", f"{role}-user")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")

    page.wait_for_url(f"{live_server.url}/")
    assert f"Roles: {role}" in page.inner_text("main")
    assert page.is_visible("text=Trial administration") is (role != "reader")


def test_wrong_password_is_refused(live_server, page):
    UserFactory(username="someone")
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "someone")
    page.fill("#id_password", "wrong")
    page.click("input[type=submit]")
    assert "did not match" in page.inner_text("main")
