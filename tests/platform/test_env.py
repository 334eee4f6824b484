"""Settings helpers refuse what they cannot read unambiguously, naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studyplatform.env import (
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_path,
    parse_broker_url,
    parse_database_url,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("off", False)])
def test_env_bool_reads_common_spellings(raw, expected):
    assert env_bool("DEBUG", default=not expected, environ={"DEBUG": raw}) is expected


def test_env_bool_refuses_ambiguous_value_naming_variable():
    with pytest.raises(ConfigError, match="DEBUG='maybe'"):
        env_bool("DEBUG", default=False, environ={"DEBUG": "maybe"})


def test_env_bool_empty_means_default():
    assert env_bool("DEBUG", default=True, environ={"DEBUG": "  "}) is True


def test_env_int_refuses_text_and_out_of_range():
    with pytest.raises(ConfigError, match="SESSION_COOKIE_AGE='ten' is not an integer"):
        env_int("SESSION_COOKIE_AGE", 1, environ={"SESSION_COOKIE_AGE": "ten"})
    with pytest.raises(ConfigError, match="below the minimum 300"):
        env_int("SESSION_COOKIE_AGE", 1, environ={"SESSION_COOKIE_AGE": "5"}, minimum=300)


def test_env_list_refuses_empty_item():
    assert env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "a.org, b.org"}) == [
        "a.org",
        "b.org",
    ]
    with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
        env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "a.org,,b.org"})


def test_env_path_must_be_absolute():
    with pytest.raises(ConfigError, match="MEDIA_ROOT='media' must be an absolute path"):
        env_path("MEDIA_ROOT", Path("/x"), environ={"MEDIA_ROOT": "media"})


def test_database_url_postgres_parts():
    db = parse_database_url("postgres://u%40x:p%2Fw@db.local:6543/trial?sslmode=require")
    assert db.as_django() == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "trial",
        "USER": "u@x",
        "PASSWORD": "p/w",
        "HOST": "db.local",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "scheme 'mysql'"),
        ("postgres://u@h", "exactly one database"),
        ("postgres://u@h:port/db", "port that is not a number"),
        ("sqlite://", "names no SQLite file"),
    ],
)
def test_database_url_refuses_bad_values(url, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_database_url(url)
    assert "DATABASE_URL" in str(error.value)


def test_broker_url_accepts_redis_and_amqp_only():
    assert parse_broker_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert parse_broker_url("amqp://guest@localhost//").startswith("amqp")
    with pytest.raises(ConfigError, match="CELERY_BROKER_URL='sqs://x'"):
        parse_broker_url("sqs://x")


def _settings_in_subprocess(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", f"import django; from django.conf import settings; {code}"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "studyplatform.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = _settings_in_subprocess({"DEBUG": "false"}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 64 + "-production-like-secret-for-the-deploy-check",
        "ALLOWED_HOSTS": "reader.example.org",
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
