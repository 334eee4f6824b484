"""Single sign-on is configured only from the environment, and a setting that cannot work stops
the start-up with a message naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFIGURED = {
    "OIDC_RP_CLIENT_ID": "reader-platform",
    "OIDC_RP_CLIENT_SECRET": "secret",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp.example/authorize",
    "OIDC_OP_TOKEN_ENDPOINT": "https://idp.example/token",
    "OIDC_OP_USER_ENDPOINT": "https://idp.example/userinfo",
    "OIDC_OP_JWKS_ENDPOINT": "https://idp.example/jwks",
}


def _run(env: dict[str, str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; {code}",
        ],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "studyplatform.settings",
            "DEBUG": "true",
            "VAR_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_explicit_endpoints_turn_single_sign_on_on(tmp_path):
    code = (
        "from django.urls import reverse; "
        "print(settings.OIDC_ENABLED, settings.AUTHENTICATION_BACKENDS[-1], "
        "reverse('oidc_authentication_callback'))"
    )
    result = _run(CONFIGURED, code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "studyplatform.accounts.oidc.SSOBackend",
        "/sso/callback/",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"OIDC_RP_CLIENT_SECRET": ""}, "OIDC_RP_CLIENT_SECRET must be set"),
        ({"OIDC_OP_JWKS_ENDPOINT": ""}, "single sign-on needs OIDC_OP_DISCOVERY_URL"),
        ({"OIDC_RP_SIGN_ALGO": "HS256"}, "OIDC_RP_SIGN_ALGO='HS256' is not an asymmetric"),
        ({"OIDC_RP_SCOPES": "openid"}, "must include openid and email"),
    ],
)
def test_a_configuration_that_cannot_work_stops_the_start_up(tmp_path, change, message):
    result = _run({**CONFIGURED, **change}, "settings.OIDC_ENABLED", tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
