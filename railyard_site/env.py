"""Typed readers for environment variables; a bad value stops start-up with a clear message."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable, or the contents of the file named by `<NAME>_FILE` (for mounted secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in TRUE:
        return True
    if raw.strip().lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_rate(name: str, default: str) -> str:
    """A request rate as DRF reads it: `<number>/<second|minute|hour|day>`."""
    raw = os.environ.get(name, default).strip()
    number, _, period = raw.partition("/")
    if not (number.isdigit() and int(number) > 0 and period in ("second", "minute", "hour", "day")):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate (use e.g. 60/minute: second, minute, hour or day)")
    return raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """A DATABASES entry from `postgres://user:pass@host:port/name` or `sqlite:////abs/path.db`."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url reads them.
        return sqlite_database(Path(unquote(parsed.path)[1:]))
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (postgres, sqlite)")


def sqlite_database(path: Path) -> dict:
    # The embedded default must work on a fresh checkout, so its folder is made on demand.
    path.parent.mkdir(parents=True, exist_ok=True)
    # A busy timeout lets the web process and the worker share the file without "database is locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        # A file, not memory, so that a worker process started by a test sees the test database.
        "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
    }


def env_command(name: str, default: list[str]) -> list[str]:
    """A command line, split as a shell would (`nice -n 10 python -m railyard_trainer`)."""
    raw = os.environ.get(name, "").strip()
    try:
        return shlex.split(raw) if raw else list(default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a command line: {exc}") from None


def env_commands(name: str) -> dict[str, list[str]]:
    """A JSON object of names to command lines (`{"registry/team:1": "/opt/venvs/team/bin/python -m x"}`)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        found = json.loads(raw)
        if not isinstance(found, dict) or not all(isinstance(v, str) and v.strip() for v in found.values()):
            raise ValueError("it must be a JSON object of names to command lines")
        return {key: shlex.split(value) for key, value in found.items()}
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a JSON object of command lines: {exc}") from None
