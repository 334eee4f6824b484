"""Every URL pattern of the URLconf, for every role: allowed or refused as the table says.

The walk goes through ``get_resolver()`` recursively (the admin included), fills each pattern's
parameters from study ``alpha`` (tests/security/conftest.py) and requests it as each of seven
roles. A pattern that the table below does not name fails the test: a new URL cannot escape
this check, its author has to state who may use it.

Outcomes: ALLOW (the view did its work: 2xx, a redirect onwards, or a 4xx about the input such
as 400/409 once access was granted), LOGIN (sent to a log-in page), DENY (401, 403, 404, or the
admin's "no such object" redirect to its index, which is what an object outside the user's
studies looks like).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from studyplatform.audit.models import AuditEvent, Signature
from studyplatform.dashboard.models import ExportJob
from studyplatform.prereads.models import AIModel, PreRead
from studyplatform.reading.models import AllocationRecord, Enrolment, ReadingSession
from studyplatform.studies.models import (
    Case,
    HangingProtocol,
    ImportRefusal,
    Site,
    SiteToken,
    Truth,
)
from tests.accounts.oidc_provider import RunningProvider, sso_enabled
from tests.security.conftest import ROLES, World

pytestmark = pytest.mark.django_db

ALLOW, DENY, LOGIN = "allow", "deny", "login"
ANON, R, R2, C, S, C2, SU = ROLES
STAFF = frozenset({C, S, C2, SU})
LOGGED_IN = frozenset(ROLES) - {ANON}


def expect(allow=frozenset(), login=frozenset(), **exact: int) -> dict[str, str | int]:
    """Outcome per role: ``allow`` roles ALLOW, ``login`` roles LOGIN, the others DENY.

    ``exact`` pins a role to one status code where the outcome words do not fit.
    """
    table: dict[str, str | int] = {
        role: ALLOW if role in allow else LOGIN if role in login else DENY for role in ROLES
    }
    table.update(exact)
    return table


@dataclass(frozen=True)
class Check:
    method: str
    expected: dict[str, str | int]
    kwargs: Callable[[World], dict[str, Any]] = lambda w: {}
    query: str = ""
    data: tuple[tuple[str, str], ...] = ()  # the POST body


# --- The table: every non-admin pattern -------------------------------------------------------

PAGES: dict[str, Check] = {
    "login/": Check("GET", expect(allow=frozenset(ROLES))),
    "logout/": Check("POST", expect(login=frozenset(ROLES))),  # logged out, to the log-in page
    "health/": Check("GET", expect(allow=frozenset(ROLES))),
    # Staff one-time passwords: staff only (a staff user without a secret is sent to enrol).
    "account/totp/enrol/": Check("GET", expect(allow=STAFF, login={ANON})),
    "account/totp/verify/": Check("GET", expect(allow=STAFF, login={ANON})),
    "": Check("GET", expect(allow=LOGGED_IN, login={ANON})),
    # The reader's own assignment: everyone else gets 404 (existence not disclosed) or 403.
    # Training: a study's own enrolled reader (alpha has no training cases: 409 after access).
    "training/<slug:slug>/": Check(
        "POST", expect(allow={R}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "sessions/<int:session_id>/continue/": Check(
        "GET", expect(allow={R}, login={ANON}), lambda w: {"session_id": w.assisted.session_id}
    ),
    "assignments/<int:pk>/": Check(
        "GET", expect(allow={R}, login={ANON}), lambda w: {"pk": w.assisted.pk}
    ),
    "assignments/<int:pk>/draft/": Check(
        "POST", expect(allow={R}, login={ANON}), lambda w: {"pk": w.assisted.pk}
    ),
    "assignments/<int:pk>/submit/": Check(
        "POST", expect(allow={R}, login={ANON}), lambda w: {"pk": w.assisted.pk}
    ),
    "assignments/<int:pk>/images/<int:position>/pixels/": Check(
        "GET", expect(allow={R}, login={ANON}), lambda w: {"pk": w.assisted.pk, "position": 1}
    ),
    # By case: the reader's opened cases, and the one after their open case (prefetch).
    "cases/<int:case>/images/<int:position>/pixels/": Check(
        "GET",
        expect(allow={R}, login={ANON}),
        lambda w: {"case": w.assisted.case_id, "position": 1},
    ),
    "assignments/<int:pk>/heatmap/": Check(
        "GET", expect(allow={R}, login={ANON}), lambda w: {"pk": w.assisted.pk}
    ),
    # A radiograph's pre-read has no per-slice heatmaps: denied (404) even to its reader here;
    # the reader's 200 for a CT pre-read is in tests/security/test_blinding_slices.py.
    "assignments/<int:pk>/heatmap/<int:position>/": Check(
        "GET", expect(login={ANON}), lambda w: {"pk": w.assisted.pk, "position": 1}
    ),
    "assignments/<int:pk>/correct/": Check(
        "GET", expect(allow={R}, login={ANON}), lambda w: {"pk": w.submitted.pk}
    ),
    # The dashboard: the study's coordinators and statisticians; readers never.
    "dashboard/": Check("GET", expect(allow=STAFF, login={ANON})),
    "dashboard/plotly-<str:version>.min.js": Check(
        "GET", expect(allow=LOGGED_IN, login={ANON}), lambda w: {"version": "3.0.0"}
    ),
    "dashboard/<slug:slug>/": Check(
        "GET", expect(allow={C, S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    # Results by arm: alpha is open, so its statistician (and superusers) only; its coordinator
    # sees them once alpha is locked (tests/security/test_concealment.py).
    "dashboard/<slug:slug>/report/": Check(
        "GET", expect(allow={S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/report/status/": Check(
        "GET", expect(allow={S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/report/retry/": Check(
        "POST", expect(allow={S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    # Power planning: the report's people (it can show the interim data of the study).
    "dashboard/<slug:slug>/planning/": Check(
        "GET", expect(allow={S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/export/": Check(
        "POST",
        expect(allow={S, SU}, login={ANON}),
        lambda w: {"slug": "alpha"},
        data=(("format", "long"),),
    ),
    # A DICOM export built by the worker: the export form's people (alpha is open: the
    # statistician and superusers); a job still queued is a 409 once access is granted.
    # The state of its jobs, which the dashboard polls: the same people as their download.
    "dashboard/<slug:slug>/export/jobs/": Check(
        "GET", expect(allow={S, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/export/jobs/<int:job_id>/download/": Check(
        "GET",
        expect(allow={S, SU}, login={ANON}),
        lambda w: {
            "slug": "alpha",
            "job_id": ExportJob.objects.get_or_create(study=w.alpha, format="sr")[0].pk,
        },
    ),
    # Managing the study (readers, sites, site tokens): its coordinators and superusers only.
    # The POSTs carry no form (400) or are refused by the study's state (409: alpha's reader
    # has read, alpha is no split-plot study); the token is revoked by the coordinator first.
    "dashboard/<slug:slug>/manage/": Check(
        "GET", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/readers/": Check(
        "GET", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/readers/create/": Check(
        "POST", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/readers/invite/": Check(
        "POST", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/readers/enrol/": Check(
        "POST", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/readers/<int:enrolment_id>/unenrol/": Check(
        "POST",
        expect(allow={C, SU}, login={ANON}),
        lambda w: {"slug": "alpha", "enrolment_id": Enrolment.objects.get(study=w.alpha).pk},
    ),
    "dashboard/<slug:slug>/manage/readers/groups/": Check(
        "POST", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    # Training: alpha is open (its training cases are fixed: 409); a waiver without a reason
    # is a bad request (400).
    "dashboard/<slug:slug>/manage/training/": Check(
        "GET", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/training/cases/": Check(
        "POST", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/training/<int:enrolment_id>/waive/": Check(
        "POST",
        expect(allow={C, SU}, login={ANON}),
        lambda w: {"slug": "alpha", "enrolment_id": Enrolment.objects.get(study=w.alpha).pk},
    ),
    "dashboard/<slug:slug>/manage/sites/": Check(
        "GET", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/sites/<int:site_id>/": Check(
        "POST",
        expect(allow={C, SU}, login={ANON}),
        lambda w: {"slug": "alpha", "site_id": Site.objects.get(code="north").pk},
    ),
    "dashboard/<slug:slug>/manage/tokens/": Check(
        "GET", expect(allow={C, SU}, login={ANON}), lambda w: {"slug": "alpha"}
    ),
    "dashboard/<slug:slug>/manage/tokens/<int:token_id>/revoke/": Check(
        "POST",
        expect(allow={C, SU}, login={ANON}),
        lambda w: {"slug": "alpha", "token_id": SiteToken.objects.get(study=w.alpha).pk},
    ),
    # The one-time password-set link: anyone holding it (a wrong one shows "does not work").
    "reset/<uidb64>/<token>/": Check(
        "GET", expect(allow=frozenset(ROLES)), lambda w: {"uidb64": "MQ", "token": "x-y"}
    ),
    "reset/done/": Check("GET", expect(allow=frozenset(ROLES))),
    # Arrival: a site token or the study's coordinator (a superuser is no coordinator here).
    "api/studies/<slug:slug>/cases/": Check("POST", expect(allow={C}), lambda w: {"slug": "alpha"}),
    # STOW-RS takes site tokens only: every session is refused (401).
    "dicomweb/studies": Check("POST", expect()),
    "dicomweb/studies/<str:study_uid>": Check("POST", expect(), lambda w: {"study_uid": "1.2.3"}),
    # --- the admin's own pages ---
    "admin/": Check("GET", expect(allow=STAFF, login={ANON, R, R2})),
    "admin/login/": Check("GET", expect(allow=frozenset(ROLES))),  # staff go on to the index
    # Staff are logged out (to the log-in page); others are sent to the admin's index, refused.
    "admin/logout/": Check("POST", expect(login=STAFF)),
    "admin/password_change/": Check("GET", expect(allow=STAFF, login={ANON, R, R2})),
    "admin/password_change/done/": Check("GET", expect(allow=STAFF, login={ANON, R, R2})),
    # The memberships' user search lists accounts: superusers only (coordinators lack view_user).
    "admin/autocomplete/": Check(
        "GET",
        expect(allow={SU}, login={ANON, R, R2}),
        query="app_label=studies&model_name=studymembership&field_name=user&term=a",
    ),
    "admin/jsi18n/": Check("GET", expect(allow=STAFF, login={ANON, R, R2})),
    "admin/r/<path:content_type_id>/<path:object_id>/": Check(
        "GET",
        expect(login={ANON, R, R2}),  # no model has a public page: 404 for staff
        lambda w: {
            "content_type_id": ContentType.objects.get_for_model(type(w.alpha)).pk,
            "object_id": w.alpha.pk,
        },
    ),
    "admin/^(?P<app_label>auth|audit|studies|prereads|reading)/$": Check(
        "GET", expect(allow={C, S, C2, SU}, login={ANON, R, R2}), lambda w: {"app_label": "studies"}
    ),
    "admin/(?P<url>.*)$": Check(
        "GET", expect(login={ANON, R, R2}), lambda w: {"url": "no/such/page/"}
    ),
    "admin/auth/user/<id>/password/": Check(
        "GET", expect(allow={SU}, login={ANON, R, R2}), lambda w: {"id": w.users[R].pk}
    ),
    # Electronic signatures: the study's coordinators (with the permission) and superusers.
    "admin/studies/study/<int:study_id>/lock/": Check(
        "GET", expect(allow={C, SU}, login={ANON, R, R2}), lambda w: {"study_id": w.alpha.pk}
    ),
    "admin/studies/study/<int:study_id>/finalize-truth/": Check(
        "GET", expect(allow={C, SU}, login={ANON, R, R2}), lambda w: {"study_id": w.alpha.pk}
    ),
    "admin/studies/study/<int:study_id>/amend-protocol/": Check(
        "GET", expect(allow={C, SU}, login={ANON, R, R2}), lambda w: {"study_id": w.alpha.pk}
    ),
}

# Single sign-on: these routes exist only when OIDC_RP_CLIENT_ID is set (tested below with a
# local provider). Starting a sign-in is open to all; a callback that no sign-in of this browser
# started is refused for everyone.
SSO_PAGES: dict[str, Check] = {
    "sso/authenticate/": Check("GET", expect(allow=frozenset(ROLES)), query="next=/"),
    "sso/callback/": Check("GET", expect(), query="code=made-up&state=made-up"),
}


# --- The table: every model in the admin ------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    """Who may list the model, open alpha's object, open the add form, open the delete page."""

    obj: Callable[[World], Any]
    list: frozenset[str]
    view: frozenset[str]
    add: frozenset[str] = frozenset()
    delete: frozenset[str] = frozenset()


COORDINATORS = frozenset({C, C2, SU})
IN_ALPHA = frozenset({C, S, SU})  # objects of alpha: its own staff only

ADMIN: dict[str, Admin] = {
    "auth/group": Admin(lambda w: w.users[C].groups.get(), {SU}, {SU}, {SU}, {SU}),
    "auth/user": Admin(lambda w: w.users[R], {SU}, {SU}, {SU}, {SU}),
    "audit/auditevent": Admin(
        lambda w: AuditEvent.objects.filter(study=w.alpha).first(), STAFF, IN_ALPHA
    ),
    "audit/signature": Admin(lambda w: Signature.objects.get(study=w.alpha), STAFF, IN_ALPHA),
    "studies/study": Admin(lambda w: w.alpha, STAFF, IN_ALPHA, COORDINATORS, {SU}),
    "studies/site": Admin(
        lambda w: Site.objects.get(code="north"), STAFF, STAFF, COORDINATORS, {SU}
    ),
    "studies/case": Admin(
        lambda w: Case.objects.filter(study=w.alpha).first(), STAFF, IN_ALPHA, COORDINATORS, {SU}
    ),
    # Truth is final (signed): it can be seen, not added or deleted.
    "studies/truth": Admin(
        lambda w: Truth.objects.filter(case__study=w.alpha).first(), STAFF, IN_ALPHA, COORDINATORS
    ),
    # Site tokens: a study's coordinators revoke them; statisticians never see them.
    "studies/sitetoken": Admin(
        lambda w: SiteToken.objects.get(study=w.alpha), COORDINATORS, {C, SU}, frozenset(), {SU}
    ),
    # Hanging protocols: the study's coordinators write and delete them; statisticians see them.
    "studies/hangingprotocol": Admin(
        lambda w: HangingProtocol.objects.get_or_create(study=w.alpha, name="PA + lateral")[0],
        STAFF,
        IN_ALPHA,
        COORDINATORS,
        {C, SU},
    ),
    # Inputs refused at import: append-only records, seen by the study's staff, written by nobody.
    "studies/importrefusal": Admin(
        lambda w: ImportRefusal.objects.get_or_create(
            study=w.alpha, source="file", item="bad.dcm", reason="not DICOM", fingerprint="0" * 64
        )[0],
        STAFF,
        IN_ALPHA,
    ),
    "prereads/aimodel": Admin(lambda w: AIModel.objects.first(), STAFF, STAFF, COORDINATORS, {SU}),
    "prereads/preread": Admin(
        lambda w: PreRead.objects.filter(case__study=w.alpha).first(), STAFF, IN_ALPHA, delete={SU}
    ),
    "reading/reader": Admin(lambda w: w.users[R].reader, STAFF, IN_ALPHA, COORDINATORS, {SU}),
    "reading/enrolment": Admin(
        lambda w: Enrolment.objects.get(study=w.alpha), STAFF, IN_ALPHA, COORDINATORS, {SU}
    ),
    "reading/readingsession": Admin(
        lambda w: ReadingSession.objects.filter(study=w.alpha).first(),
        STAFF,
        IN_ALPHA,
        COORDINATORS,
        {SU},
    ),
    "reading/allocationrecord": Admin(
        lambda w: AllocationRecord.objects.get(study=w.alpha), STAFF, IN_ALPHA
    ),
    "reading/assignment": Admin(lambda w: w.assisted, STAFF, IN_ALPHA),
    "reading/read": Admin(lambda w: w.submitted.reads.get(), STAFF, IN_ALPHA),
}

_ADMIN_ROUTES = {
    "": lambda a: ("list", a.list),
    "add/": lambda a: ("add", a.add),
    "<path:object_id>/history/": lambda a: ("object", a.view),
    "<path:object_id>/delete/": lambda a: ("object", a.delete),
    "<path:object_id>/change/": lambda a: ("object", a.view),
    "<path:object_id>/": lambda a: ("object", a.view),  # redirects to change/
}


def _admin_check(route: str) -> Check | None:
    for model, admin in ADMIN.items():
        prefix = f"admin/{model}/"
        suffix = route[len(prefix) :] if route.startswith(prefix) else None
        if suffix is None or suffix not in _ADMIN_ROUTES:
            continue
        kind, allowed = _ADMIN_ROUTES[suffix](admin)
        kwargs = (lambda w, a=admin: {"object_id": a.obj(w).pk}) if kind == "object" else None
        return Check("GET", expect(allow=allowed, login={ANON, R, R2}), kwargs or (lambda w: {}))
    return None


# --- The walk ---------------------------------------------------------------------------------


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def all_routes() -> list[tuple[str, URLPattern]]:
    return list(_walk(get_resolver().url_patterns))


def _path(route: str, kwargs: dict[str, Any], query: str) -> str:
    import re

    path = re.sub(
        r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)",
        lambda m: str(kwargs[m.group(1) or m.group(2)]),
        route,
    )
    path = "/" + path.replace("^", "").replace("$", "")
    return path + (f"?{query}" if query else "")


def _outcome(
    client: Client, method: str, path: str, data: tuple[tuple[str, str], ...] = ()
) -> str | int:
    response = client.post(path, dict(data)) if data else getattr(client, method.lower())(path)
    for _ in range(3):
        if response.status_code not in (301, 302):
            break
        if urlsplit(response["Location"]).netloc not in ("", "testserver"):
            return ALLOW  # sent to another site (the identity provider): the view did its work
        location = urlsplit(response["Location"]).path
        if location in ("/login/", "/admin/login/"):
            return LOGIN
        if location == "/admin/" and path != "/admin/login/":
            return DENY  # the admin's answer for an object the user may not see
        response = client.get(response["Location"])
    status: int = response.status_code
    if status >= 500 or status == 405:
        raise AssertionError(f"{method} {path} answered {status}")
    if status in (301, 302):
        return status
    if 200 <= status < 300 or status in (400, 409, 413, 429):
        return ALLOW
    return DENY


def check_for(route: str) -> Check | None:
    return PAGES.get(route) or _admin_check(route)


def test_every_url_pattern_is_in_the_permission_table():
    missing = sorted(route for route, _ in all_routes() if check_for(route) is None)
    assert not missing, f"URL patterns without a permission expectation: {missing}"
    unknown = sorted(set(PAGES) - {route for route, _ in all_routes()})
    assert not unknown, f"table entries for URL patterns that no longer exist: {unknown}"
    assert not set(SSO_PAGES) & {route for route, _ in all_routes()}, "SSO is off by default"


@pytest.fixture
def sso_on():
    server = RunningProvider()
    server.provider.reset(email="nobody@hospital.example", email_verified=True)
    try:
        with sso_enabled(server.provider):
            yield
    finally:
        server.stop()


def test_sso_routes_are_in_the_permission_table_when_configured(sso_on):
    routes = {route for route, _ in all_routes()}
    assert set(SSO_PAGES) <= routes
    missing = sorted(r for r in routes if check_for(r) is None and r not in SSO_PAGES)
    assert not missing, f"URL patterns without a permission expectation: {missing}"


def test_sso_routes_answer_every_role_as_the_table_says(world, sso_on, settings):
    settings.DEBUG = False
    settings.LOGIN_FAILURE_LIMIT = 100  # each refused callback counts; a 429 would hide a 403
    wrong = []
    for route, check in SSO_PAGES.items():
        path = _path(route, check.kwargs(world), check.query)
        for role in ROLES:
            client = Client()
            user = world.users[role]
            if user is not None:
                client.force_login(user)
            got = _outcome(client, check.method, path, check.data)
            if got != check.expected[role]:
                wrong.append(
                    f"{check.method} {path} as {role}: {got}, expected {check.expected[role]}"
                )
    assert not wrong, "\n".join(wrong)


def test_every_role_gets_exactly_what_the_table_allows(world, settings):
    settings.DEBUG = False

    def logged_in(role: str) -> Client:
        client = Client()
        user = world.users[role]
        if user is not None:
            client.force_login(user)
        return client

    clients = {role: logged_in(role) for role in ROLES}
    wrong = []
    for route, _ in all_routes():
        check = check_for(route)
        if check is None:
            continue  # reported by the test above
        path = _path(route, check.kwargs(world), check.query)
        for role in ROLES:
            # A log-out ends the session: it gets a client of its own.
            client = logged_in(role) if "logout" in route else clients[role]
            got = _outcome(client, check.method, path, check.data)
            expected = check.expected[role]
            if isinstance(expected, str) and got in (301, 302):
                got = ALLOW
            if got != expected:
                wrong.append(f"{check.method} {path} as {role}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("debug", [False, True])
def test_no_url_serves_stored_files_directly(world, settings, debug):
    """Images and heatmaps leave only through the permission-checked reading views."""
    from studyplatform.studies.models import Image

    settings.DEBUG = debug
    names = [
        *(
            name
            for image in Image.objects.all()
            for name in (image.original.name, image.display.name)
        ),
        *(p.heatmap.name for p in PreRead.objects.exclude(heatmap="")),
    ]
    assert names
    paths = [f"/media/{name}" for name in names] + [
        f"/static/../media/{names[0]}",
        f"/static/%2e%2e/media/{names[0]}",
        f"/{names[0]}",
    ]
    for role in ROLES:
        client = Client()
        if world.users[role] is not None:
            client.force_login(world.users[role])
        for path in paths:
            response = client.get(path)
            assert response.status_code == 404, f"{path} as {role}: {response.status_code}"
