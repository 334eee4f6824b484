"""Typed readers for settings that come from the environment.

Each helper refuses values it cannot read unambiguously and names the variable in the error,
so that a misconfigured deployment fails at start-up rather than at the first request.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit


class ConfigError(ValueError):
    """A setting's environment variable holds a value we refuse to guess about."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(
        f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off"
    )


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name}={number} is above the maximum {maximum}")
    return number


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; empty items (``a,,b``) are refused as likely typos."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ConfigError(f"{name}={value!r} has an empty item in its comma-separated list")
    return items


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_networks(
    name: str, default: list[str], environ: Mapping[str, str] | None = None
) -> list[IPNetwork]:
    """A comma-separated list of IP addresses or networks (``10.0.0.5, 172.30.0.0/24``)."""
    networks = []
    for item in env_list(name, default, environ):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            raise ConfigError(
                f"{name} has {item!r}, which is not an IP address or network "
                "(a.b.c.d or a.b.c.0/24)"
            ) from None
    return networks


def env_path(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    if value is None:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{name}={value!r} must be an absolute path")
    return path


# A development checkout's defaults: written by dev.py, read before the settings so that the
# README's commands run there as printed. Production images carry no ``var/`` beside the code,
# and the environment always wins over the file.
DEV_ENV_KEYS = frozenset({"DEBUG"})


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of ``path`` (``#`` comments and blank lines skipped); {} if absent.

    Only :data:`DEV_ENV_KEYS` may appear: the file makes a checkout a development one, it is not
    a second place for production settings.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in DEV_ENV_KEYS:
            raise ConfigError(
                f"{path}, line {number}: expected one of {', '.join(sorted(DEV_ENV_KEYS))}=value, "
                f"got {line!r}"
            )
        values[key] = value.strip()
    return values


def apply_env_file(path: Path, environ: MutableMapping[str, str] | None = None) -> None:
    """Set the file's values where the environment has none (the environment wins)."""
    target = os.environ if environ is None else environ
    for key, value in read_env_file(path).items():
        target.setdefault(key, value)


@dataclass(frozen=True)
class Database:
    """The parts of ``DATABASE_URL`` that Django's ``DATABASES`` entry needs."""

    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def as_django(self) -> dict[str, object]:
        config: dict[str, object] = {
            "ENGINE": self.engine,
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
            "OPTIONS": dict(self.options),
        }
        return config


_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "psql"}


def parse_database_url(url: str, *, name: str = "DATABASE_URL") -> Database:
    """Read ``postgres://user:pass@host:port/db?sslmode=require`` or ``sqlite:///abs/path``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if not path or path == "/":
            raise ConfigError(f"{name}={url!r} names no SQLite file (use sqlite:////abs/path.db)")
        return Database(engine="django.db.backends.sqlite3", name=path)
    if scheme not in _POSTGRES_SCHEMES:
        raise ConfigError(
            f"{name}={url!r} has scheme {parts.scheme!r}; supported: postgres://, sqlite://"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(f"{name}={url!r} must name exactly one database after the host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name}={url!r} has a port that is not a number") from None
    options = tuple(parse_qsl(parts.query, keep_blank_values=False, strict_parsing=False))
    return Database(
        engine="django.db.backends.postgresql",
        name=database,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=unquote(parts.hostname or ""),
        port="" if port is None else str(port),
        options=options,
    )


_BROKER_SCHEMES = {"redis", "rediss", "amqp", "amqps", "pyamqp"}


def parse_broker_url(url: str, *, name: str = "CELERY_BROKER_URL") -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _BROKER_SCHEMES:
        raise ConfigError(
            f"{name}={url!r} has scheme {scheme!r}; supported: redis://, rediss://, amqp://"
        )
    return url
