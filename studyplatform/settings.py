"""Settings, read only from the environment (every variable is listed in docker/.env.example).

With nothing set, the platform runs for a newcomer: SQLite under ./var, an embedded file-system
broker that a real worker process reads, DEBUG on. Production sets DEBUG=false, SECRET_KEY,
ALLOWED_HOSTS, DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis or RabbitMQ).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import django_stubs_ext

from studyplatform.env import (
    ConfigError,
    apply_env_file,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_path,
    env_str,
    parse_broker_url,
    parse_database_url,
)

# Lets admin and queryset classes be subscripted at run time, as their type hints are.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

# A checkout that dev.py set up runs the README's commands as printed (DEBUG on); see env.py.
apply_env_file(BASE_DIR / "var" / "dev.env")
DEBUG = env_bool("DEBUG", default=False)
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

_secret = env_str("SECRET_KEY", "")
if not _secret:
    if not DEBUG:
        raise ConfigError("SECRET_KEY must be set when DEBUG is off (production)")
    _secret = "django-insecure-development-only-key-never-used-when-debug-is-off"  # noqa: S105
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "studyplatform.accounts",
    "studyplatform.studies",
    "studyplatform.prereads",
    "studyplatform.reading",
    "studyplatform.dashboard",
    "studyplatform.audit",
    "readers",
]

MIDDLEWARE = [
    "studyplatform.accounts.middleware.ContentSecurityPolicyMiddleware",  # every response
    "studyplatform.dashboard.middleware.LocalHealthCheckMiddleware",
    "studyplatform.accounts.middleware.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "studyplatform.accounts.middleware.LoginThrottleMiddleware",
    "studyplatform.accounts.middleware.StaffTOTPMiddleware",
    "studyplatform.accounts.middleware.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "studyplatform.urls"
WSGI_APPLICATION = "studyplatform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", "")
if _database_url:
    _database = parse_database_url(_database_url).as_django()
else:
    # The newcomer's default: everything under one local folder, created on first use.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "db.sqlite3")}
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # A file-backed test database, so that a worker process can see what a test wrote; one per
    # test process, so that two test runs on one checkout never share it.
    _database["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
    _database["OPTIONS"] = {"timeout": 30}
else:
    _database["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

# Mail: the one-time password-set links that coordinators give new readers. Development prints
# mails on the console; production names an SMTP backend (EMAIL_HOST and friends are Django's).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "reader-study@localhost")
# How long a password-set link works (Django's reset tokens), in seconds: three days.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600, minimum=60)
LOGOUT_REDIRECT_URL = "login"
# Every password check goes through the login throttle: after LOGIN_FAILURE_LIMIT wrong
# passwords for one user name from one address in LOGIN_FAILURE_WINDOW seconds, log-in pauses.
AUTHENTICATION_BACKENDS = ["studyplatform.accounts.backends.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 900, minimum=1)

# --- Single sign-on (OpenID Connect) and one-time passwords for staff ---------------------
# Off unless OIDC_RP_CLIENT_ID is set. Sign-in maps a provider's *verified* email to an existing
# active account (SSO never creates one); see docs/sso.md. Endpoints come from the provider's
# discovery document (OIDC_OP_DISCOVERY_URL) unless all four are given explicitly.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_DISCOVERY_URL = env_str("OIDC_OP_DISCOVERY_URL", "")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "your organisation")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10, minimum=1)
# ``amr`` values (RFC 8176) that count as a second factor done at the provider: such a sign-in
# skips the platform's own one-time password. "none": always ask for it.
OIDC_MFA_AMR = [value for value in env_list("OIDC_MFA_AMR", ["mfa"]) if value != "none"]
# Fixed by the platform, not configurable: accounts are never created by SSO, the code exchange
# uses PKCE, and a nonce binds the ID token to the browser that started the sign-in.
OIDC_CREATE_USER = False
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
if OIDC_ENABLED:
    if not OIDC_RP_CLIENT_SECRET:
        raise ConfigError("OIDC_RP_CLIENT_SECRET must be set when OIDC_RP_CLIENT_ID is")
    if OIDC_RP_SIGN_ALGO not in {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}:
        raise ConfigError(
            f"OIDC_RP_SIGN_ALGO={OIDC_RP_SIGN_ALGO!r} is not an asymmetric algorithm "
            "(RS256, RS384, RS512, ES256, ES384, ES512)"
        )
    if not {"openid", "email"} <= set(OIDC_RP_SCOPES.split()):
        raise ConfigError(f"OIDC_RP_SCOPES={OIDC_RP_SCOPES!r} must include openid and email")
    _endpoints = (
        OIDC_OP_AUTHORIZATION_ENDPOINT,
        OIDC_OP_TOKEN_ENDPOINT,
        OIDC_OP_USER_ENDPOINT,
        OIDC_OP_JWKS_ENDPOINT,
    )
    if not OIDC_OP_DISCOVERY_URL and not all(_endpoints):
        raise ConfigError(
            "single sign-on needs OIDC_OP_DISCOVERY_URL, or all of OIDC_OP_AUTHORIZATION_ENDPOINT,"
            " OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT and OIDC_OP_JWKS_ENDPOINT"
        )
    AUTHENTICATION_BACKENDS.append("studyplatform.accounts.oidc.SSOBackend")
# Staff (coordinators, statisticians, superusers, admin users) enter a time-based one-time
# password (RFC 6238) after signing in, before any page; readers are not asked.
REQUIRE_STAFF_TOTP = env_bool("REQUIRE_STAFF_TOTP", default=False)
TOTP_ISSUER = env_str("TOTP_ISSUER", "Reader-study platform")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Files --------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
# A model is code: loading one runs its factory, its TorchScript or its MONAI bundle's config.
# The web admin registers models only from files under MODELS_ROOT (after symlinks and "..")
# built by a factory in MODEL_FACTORIES ("module:function"); only operators should be able to
# write there. ``manage.py register_model`` is the operator's tool and takes any path and factory.
MODELS_ROOT = env_path("MODELS_ROOT", VAR_DIR / "models")
MODEL_FACTORIES = env_list("MODEL_FACTORIES", [])
for _factory in MODEL_FACTORIES:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", _factory):
        raise ConfigError(f"MODEL_FACTORIES item {_factory!r} is not module:function")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("UPLOAD_MAX_MEMORY_MB", 50, minimum=1) * 1024 * 1024
# Uploaded files larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest single uploaded file a view accepts (studyplatform.audit.files.check_upload).
MAX_UPLOAD_SIZE = env_int("MAX_UPLOAD_MB", 200, minimum=1) * 1024 * 1024
# The most pixel data one image file may decode to (frames x rows x columns x samples x bytes
# per sample, read from the header before decoding): a small file that claims a huge image (a
# decompression bomb) is refused instead of exhausting the worker's memory. 128 MiB is about
# three times the largest single radiograph (mammography 4096 x 5625 at 16 bits: 46 MB; a
# 43 x 43 cm detector at 100 um, 4300 x 4300: 37 MB) and holds a multi-frame file of 256 CT
# slices of 512 x 512; CT and MR series usually arrive as one file per slice (512 KB each), and
# a case keeps one 2-D image per file. Decoding, de-identifying and deriving the viewer's image
# needs a few times this much memory at the peak. Raise it for larger multi-frame files
# (tomosynthesis, a whole enhanced CT series in one file) together with the workers' memory.
IMAGE_MAX_DECODED_BYTES = env_int("IMAGE_MAX_DECODED_MB", 128, minimum=1) * 1024 * 1024
# The largest STOW-RS request (POST /dicomweb/studies) a site may send: a router sends a whole
# study in one request, and a thin-slice CT of 600-1000 slices of 512 x 512 is 300-550 MB. The
# body is spooled to a temporary file (FILE_UPLOAD_TEMP_DIR, else the system's) and imported
# one instance at a time, so this bounds the disk a request takes, not the worker's memory.
STOW_MAX_REQUEST_SIZE = env_int("STOW_MAX_REQUEST_MB", 2048, minimum=1) * 1024 * 1024
# Requests a minute one site token may send to the intake API (each a case, or a resend of
# one); beyond it the API answers 429 with Retry-After until the minute is over. 0: no limit.
INTAKE_RATE_LIMIT = env_int("INTAKE_RATE_LIMIT", 120, minimum=0)
# Days a finished export job's file (the dashboard's DICOM zip) stays under MEDIA_ROOT/exports
# before the hourly clean-up removes it (its job then says so; a new export can be asked for).
EXPORT_RETENTION_DAYS = env_int("EXPORT_RETENTION_DAYS", 7, minimum=1)
# Credentials for the DICOMweb archive that manage.py import_dicomweb reads from: HTTP basic
# (DICOMWEB_USERNAME and DICOMWEB_PASSWORD) or a bearer token (DICOMWEB_TOKEN), not both; none
# for an archive without authentication.
DICOMWEB_USERNAME = env_str("DICOMWEB_USERNAME", "")
DICOMWEB_PASSWORD = env_str("DICOMWEB_PASSWORD", "")
DICOMWEB_TOKEN = env_str("DICOMWEB_TOKEN", "")
# Seconds to wait for the archive to answer one request (search or one instance).
DICOMWEB_TIMEOUT = env_int("DICOMWEB_TIMEOUT", 60, minimum=1)

# --- Security (production when DEBUG is off) ----------------------------------------------
# Idle expiry: every request renews the session, which ends SESSION_COOKIE_AGE seconds after
# the last one, and at the latest when the browser closes.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Every response: scripts, styles and everything else only from this site (static files);
# images also as data: and blob: URLs (the viewer decodes the 16-bit PNGs in the browser). No
# inline scripts or styles: pages take their data from json_script elements.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    if env_bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The addresses (or networks) of the proxies in front of the web app. X-Forwarded-For and
# X-Forwarded-Proto are believed only from them; from any other peer they are dropped, so a
# client that reaches the web app directly cannot pick its own address or scheme.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", [])

# --- Celery -------------------------------------------------------------------------------
_broker_url = env_str("CELERY_BROKER_URL", "")
if _broker_url:
    CELERY_BROKER_URL = parse_broker_url(_broker_url)
    _default_backend = (
        _broker_url if _broker_url.split(":", 1)[0] in {"redis", "rediss"} else "rpc://"
    )
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_backend)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    # The embedded broker: messages are files under var/broker that a real worker process
    # polls. It needs no server, which is what a newcomer's demo and a laptop's tests want.
    _broker_dir = VAR_DIR / "broker"
    for _folder in (_broker_dir / "queue", _broker_dir / "control", VAR_DIR / "results"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", (VAR_DIR / "results").as_uri())
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=1, maximum=3600)
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 2, minimum=1)
# Self-healing pre-reads (the worker's beat runs the sweeper every PREREAD_SWEEP_INTERVAL
# seconds): a pre-read pending for PREREAD_REQUEUE_AFTER seconds since it was queued is queued
# again (its message was lost), and one running without a heartbeat for PREREAD_STALE_AFTER
# seconds (its worker died) goes back to pending.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
PREREAD_SWEEP_INTERVAL = env_int("PREREAD_SWEEP_INTERVAL", 60, minimum=1)
PREREAD_REQUEUE_AFTER = env_int("PREREAD_REQUEUE_AFTER", 900, minimum=1)
PREREAD_STALE_AFTER = env_int("PREREAD_STALE_AFTER", 900, minimum=1)

# --- Logging ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # dicomweb-client logs every request at INFO: import_dicomweb prints its own progress;
    # highdicom logs every module it copies into a new object (export --format sr).
    "loggers": {"dicomweb_client": {"level": "WARNING"}, "highdicom": {"level": "WARNING"}},
}
