"""Worker processes for tests: `manage.py run_worker` against the test database, as a deployment runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

#: A stand-in trainer for tests of many runs (see the file): the worker cannot tell it from the real one.
QUICK_TRAINER = Path(__file__).with_name("quick_trainer.py")


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The worker's environment: this test's database, store and folders, and a pass every second."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "RAILYARD_ARTIFACT_STORE": settings.RAILYARD["ARTIFACT_STORE"],
        "RAILYARD_WORK_DIR": str(settings.RAILYARD["WORK_DIR"]),
        "RAILYARD_DATA_DIR": str(settings.RAILYARD["DATA_DIR"]),
        "RAILYARD_RECONCILE_INTERVAL": "1",
        "RAILYARD_WORKER_PROCESSES": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_worker(
    tmp_path: Path, *args: str, name: str = "worker", env: dict[str, str] | None = None, **options: object
) -> subprocess.Popen:
    """`manage.py run_worker` as its own process, logging to tmp_path/<name>.log (appended to)."""
    log = open(tmp_path / f"{name}.log", "a+")  # noqa: SIM115 - the process writes it until it ends
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", *args],
        cwd=settings.BASE_DIR,
        env=env or worker_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        **options,
    )
