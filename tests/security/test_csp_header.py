"""Every response carries the Content-Security-Policy; only the chart page allows inline styles."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/health/", "/no-such-page/"])
def test_every_response_carries_the_strict_policy(path):
    response = Client().get(path)

    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_pages_carry_no_inline_script_or_style(admin_client):
    body = admin_client.get("/login/").content.decode() + Client().get("/login/").content.decode()

    assert "<style" not in body and 'style="' not in body
    assert "<script>" not in body


def test_the_report_page_allows_inline_styles_but_never_inline_scripts_to_its_viewers(roles, world):
    staff = Client()
    staff.force_login(world.users["statistician"])  # the interim report is theirs alone

    response = staff.get("/dashboard/alpha/report/")

    policy = response["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'self';" in policy
    assert Client().get("/dashboard/alpha/report/").status_code in (302, 403)  # not logged in
