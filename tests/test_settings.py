"""Settings come from the environment; bad values stop start-up with a message naming them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from railyard_site.env import database_from_url, env_bool, env_int, env_list, env_str


def test_it_reads_booleans_and_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG", False)


def test_it_reads_integers_with_a_minimum(monkeypatch):
    assert env_int("RAILYARD_TEST_UNSET", 4) == 4
    monkeypatch.setenv("N", "x")
    with pytest.raises(ImproperlyConfigured, match="N='x' is not an integer"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="N=0 must be at least 1"):
        env_int("N", 1, minimum=1)


def test_it_reads_secrets_from_files(monkeypatch, tmp_path):
    (tmp_path / "key").write_text("s3cret\n")
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "key"))
    assert env_str("SECRET_KEY") == "s3cret"
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match=r"SECRET_KEY_FILE=.* cannot be read"):
        env_str("SECRET_KEY")


def test_it_reads_lists(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example,")
    assert env_list("HOSTS", []) == ["a.example", "b.example"]


def test_it_parses_database_urls(tmp_path):
    pg = database_from_url("postgres://rail:p%40ss@db.internal:6543/railyard")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql",
        "railyard",
        "rail",
        "p@ss",
        "db.internal",
        "6543",
    )
    lite = database_from_url(f"sqlite:///{tmp_path}/x/db.sqlite3")
    assert lite["NAME"] == Path(f"{tmp_path}/x/db.sqlite3")
    assert (tmp_path / "x").is_dir()
    with pytest.raises(ImproperlyConfigured, match="scheme 'mysql' is not supported"):
        database_from_url("mysql://x/y")


def start_django(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; print(len(settings.SECRET_KEY))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "railyard_site.settings", **env},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_without_a_secret_key_saying_how_to_set_one(tmp_path):
    refused = start_django({"RAILYARD_VAR_DIR": str(tmp_path)})

    assert refused.returncode != 0
    assert "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE" in refused.stderr
    assert "secrets.token_urlsafe(50)" in refused.stderr


def test_it_starts_with_a_secret_key_or_in_debug(tmp_path):
    (tmp_path / "key").write_text("k" * 50)
    assert start_django({"RAILYARD_VAR_DIR": str(tmp_path), "SECRET_KEY_FILE": str(tmp_path / "key")}).stdout == "50\n"
    assert start_django({"RAILYARD_VAR_DIR": str(tmp_path), "DEBUG": "true"}).returncode == 0


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={"PATH": os.environ["PATH"], **env},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_deployment_settings_pass_djangos_deployment_check(tmp_path):
    production = {
        "RAILYARD_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "p" * 30 + "roduction-" + "k" * 30,
        "ALLOWED_HOSTS": "railyard.example.com",
        "RAILYARD_HTTPS": "true",
    }
    checked = manage(production, "check", "--deploy", "--fail-level", "WARNING")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout
    plain = manage({**production, "RAILYARD_HTTPS": "false"}, "check", "--deploy", "--fail-level", "WARNING")
    assert plain.returncode != 0  # without HTTPS the check says what is missing
    assert "SECURE_SSL_REDIRECT" in plain.stderr + plain.stdout


def test_it_refuses_a_rate_that_is_not_one(monkeypatch):
    from railyard_site.env import env_rate

    assert env_rate("RAILYARD_TEST_UNSET", "60/minute") == "60/minute"
    monkeypatch.setenv("RATE", "lots")
    with pytest.raises(ImproperlyConfigured, match="RATE='lots' is not a rate"):
        env_rate("RATE", "60/minute")
