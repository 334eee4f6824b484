"""Staff one-time passwords (REQUIRE_STAFF_TOTP), and the audit of password log-ins, through
the log-in page and the pages a browser uses."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from studyplatform.accounts.models import LoginAttempts, StaffTOTP
from studyplatform.accounts.roles import COORDINATOR, READER, STATISTICIAN
from studyplatform.audit.models import Action, AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _require_totp(settings):
    settings.REQUIRE_STAFF_TOTP = True


def make_user(role: str, username: str):
    user = UserFactory(username=username)
    user.groups.set([Group.objects.get(name=role)])
    return user


@pytest.fixture
def coordinator(roles):
    return make_user(COORDINATOR, "grace")


def log_in(client: Client, username: str, password: str = PASSWORD):
    return client.post(reverse("login"), {"username": username, "password": password})


def enrol(client: Client) -> str:
    """Enrol through the page; the secret it showed."""
    page = client.get(reverse("totp_enrol"))
    assert page.status_code == 200
    secret = client.session["staff_totp_enrol_secret"]
    done = client.post(reverse("totp_enrol"), {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200, done.content
    return str(secret)


def next_step_code(secret: str) -> str:
    """The code of the next 30-second step (accepted: one step of clock drift is allowed)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def failures(username: str) -> int:
    row = LoginAttempts.objects.filter(username=f"totp:{username}").first()
    return 0 if row is None else row.attempts


def test_staff_without_a_secret_is_sent_to_enrolment(coordinator, client):
    assert log_in(client, "grace").status_code == 302
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("totp_enrol"))
    assert client.get("/admin/").status_code == 302


def test_enrolment_page_shows_the_qr_code_and_the_otpauth_uri(coordinator, client):
    log_in(client, "grace")
    page = client.get(reverse("totp_enrol")).content.decode()
    secret = client.session["staff_totp_enrol_secret"]
    assert 'src="data:image/svg+xml;base64,' in page
    assert "otpauth://totp/" in page and f"secret={secret}" in page


def test_wrong_code_at_enrolment_is_refused_counted_and_audited(coordinator, client):
    log_in(client, "grace")
    client.get(reverse("totp_enrol"))
    secret = client.session["staff_totp_enrol_secret"]
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 1_000_000:06d}"
    response = client.post(reverse("totp_enrol"), {"code": wrong})
    assert response.status_code == 400
    assert not StaffTOTP.objects.filter(user=coordinator).exists()
    assert failures("grace") == 1
    assert AuditEvent.objects.filter(action=Action.USER_TOTP_REFUSED).count() == 1
    assert client.get("/dashboard/").status_code == 302


def test_right_code_at_enrolment_opens_the_dashboard_and_gives_backup_codes(coordinator, client):
    log_in(client, "grace")
    client.get(reverse("totp_enrol"))
    secret = client.session["staff_totp_enrol_secret"]
    done = client.post(reverse("totp_enrol"), {"code": pyotp.TOTP(secret).now()})
    codes = re.findall(r"<code>([0-9a-f]{6}-[0-9a-f]{6})</code>", done.content.decode())
    assert len(codes) == 10
    assert StaffTOTP.objects.get(user=coordinator).secret == secret
    assert client.get("/dashboard/").status_code == 200
    assert AuditEvent.objects.filter(action=Action.USER_TOTP_ENROL).count() == 1


def test_next_log_in_asks_for_the_code_and_a_right_one_opens_the_dashboard(coordinator):
    first = Client()
    log_in(first, "grace")
    secret = enrol(first)
    client = Client()
    log_in(client, "grace")
    response = client.get("/dashboard/")
    assert response["Location"].startswith(reverse("totp_verify"))
    wrong = client.post(reverse("totp_verify"), {"code": "000000", "next": "/dashboard/"})
    assert wrong.status_code == 400
    assert "not right" in wrong.content.decode()
    assert failures("grace") == 1
    # The enrolment used this step's code; the next step's is accepted.
    code = next_step_code(secret)
    right = client.post(reverse("totp_verify"), {"code": code, "next": "/dashboard/"})
    assert right.status_code == 302 and right["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200
    assert failures("grace") == 0
    assert AuditEvent.objects.filter(action=Action.USER_TOTP_VERIFY).count() == 1


def test_a_code_is_accepted_once(coordinator):
    first = Client()
    log_in(first, "grace")
    secret = enrol(first)
    client = Client()
    log_in(client, "grace")
    used = pyotp.TOTP(secret).now()  # the code the enrolment just used
    assert client.post(reverse("totp_verify"), {"code": used}).status_code == 400


def test_a_backup_code_works_once(coordinator):
    first = Client()
    log_in(first, "grace")
    first.get(reverse("totp_enrol"))
    secret = first.session["staff_totp_enrol_secret"]
    done = first.post(reverse("totp_enrol"), {"code": pyotp.TOTP(secret).now()})
    backup = re.findall(r"<code>([0-9a-f]{6}-[0-9a-f]{6})</code>", done.content.decode())[0]
    client = Client()
    log_in(client, "grace")
    assert client.post(reverse("totp_verify"), {"code": backup}).status_code == 302
    assert client.get("/dashboard/").status_code == 200
    again = Client()
    log_in(again, "grace")
    assert again.post(reverse("totp_verify"), {"code": backup}).status_code == 400


def test_wrong_codes_are_throttled_like_passwords(coordinator, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    first = Client()
    log_in(first, "grace")
    secret = enrol(first)
    client = Client()
    log_in(client, "grace")
    assert client.post(reverse("totp_verify"), {"code": "000000"}).status_code == 400
    assert client.post(reverse("totp_verify"), {"code": "000001"}).status_code == 400
    code = next_step_code(secret)
    throttled = client.post(reverse("totp_verify"), {"code": code})
    assert throttled.status_code == 429
    assert client.get("/dashboard/").status_code == 302


def test_readers_are_not_asked(roles, client):
    make_user(READER, "ada")
    log_in(client, "ada")
    assert client.get(reverse("home")).status_code == 200
    assert client.get(reverse("totp_enrol")).status_code == 403


def test_statisticians_and_superusers_are_asked(roles, client):
    make_user(STATISTICIAN, "stats")
    UserFactory(username="root", is_superuser=True, is_staff=True)
    for username in ("stats", "root"):
        browser = Client()
        log_in(browser, username)
        assert browser.get("/dashboard/")["Location"].startswith(reverse("totp_enrol"))


def test_staff_are_not_asked_when_not_required(coordinator, client, settings):
    settings.REQUIRE_STAFF_TOTP = False
    log_in(client, "grace")
    assert client.get("/dashboard/").status_code == 200


def test_replacing_the_secret_needs_the_current_code(coordinator):
    first = Client()
    log_in(first, "grace")
    enrol(first)
    client = Client()
    log_in(client, "grace")
    response = client.get(reverse("totp_enrol"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("totp_verify"))
