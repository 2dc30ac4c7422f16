"""Shared fixtures: three users with defined roles, isolated storage, the real workflow catalogue.

- alice submits runs (the owner in most tests), bob is another member, charlie is an operator
  (staff) who uses the admin.
- Every test gets its own artifact store, work and data directories under tmp_path.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django_q.conf import Conf
from rest_framework.test import APIClient

from railyard_trainer.paths import ROOTS_ENV
from training import demo, images
from training.models import ApiToken, Run

DATASET_ROWS = 12_000

# pytest-playwright's session-wide sync API keeps an event loop in the test thread once a browser
# test has run; the ORM calls of every later test are still synchronous, so Django's guard against
# ORM use inside an event loop must stand down for the test session.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def railyard_dirs(settings, tmp_path: Path, tmp_path_factory, monkeypatch) -> Path:
    """Each test's own store, work and data directories; data may be read from any test's folder.

    (The shared dataset lives beside the tests' folders; tests of the data roots narrow them.)
    """
    roots = [tmp_path / "data", tmp_path_factory.getbasetemp()]
    settings.RAILYARD = {
        **settings.RAILYARD,
        "ARTIFACT_STORE": f"file://{tmp_path / 'artifacts'}",
        "WORK_DIR": tmp_path / "work",
        "DATA_DIR": tmp_path / "data",
        "DATA_ROOTS": roots,
    }
    # The trainer run in this process (train_in_process) reads its roots as a trainer process would.
    monkeypatch.setenv(ROOTS_ENV, ",".join(map(str, roots)))
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache (run ids repeat across tests on SQLite)."""
    cache.clear()


@pytest.fixture(autouse=True)
def enqueue_only(monkeypatch):
    """Tasks go to the ORM queue like in production; tests drive the worker explicitly."""
    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.fixture(scope="session")
def catalogue() -> list[dict]:
    return images.discover(images.DEFAULT)[0]


@pytest.fixture
def workflows(db, catalogue):
    images.sync(images.DEFAULT, catalogue)


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password="alice-password")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob", password="bob-password")


@pytest.fixture
def charlie(db) -> User:
    return User.objects.create_user("charlie", password="charlie-password", is_staff=True, is_superuser=True)


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(alice)[1]}")
    return client


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic card-fraud dataset (a year of charges plus merchants), written once."""
    return demo.write_dataset(tmp_path_factory.mktemp("dataset"), n_rows=DATASET_ROWS, seed=3)


@pytest.fixture
def fraud_request(dataset) -> dict:
    request = demo.demo_request(dataset["charges"], dataset["merchants"])
    request["train"]["custom_params"] = {"max_iter": 30}
    return copy.deepcopy(request)


def wait_for_terminal(run: Run, reconcile, timeout: float = 300.0) -> Run:
    """Drive the worker's reconcile pass until the run ends (a generous limit: CI shares its cores)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconcile()
        run.refresh_from_db()
        if run.state.is_terminal:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run.pk} still {run.status} after {timeout}s")


def wait_until(predicate, timeout: float = 300.0, every: float = 0.2) -> None:
    """Check a condition until it holds (a generous limit: CI shares its cores)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"the condition did not hold within {timeout}s")


def launched(run: Run, handle: dict | None = None, running: bool = False):
    """The run's job, launched (and running) as far as the records go; no executor is involved."""
    from training import states

    job = states.open_job(run)
    assert states.job_launched(job, handle or {})
    if running:
        assert states.job_running(job)
    run.refresh_from_db()
    return job


def train_in_process(owner, request: dict) -> Run:
    """A succeeded run whose artifacts the real trainer wrote (in this process, for speed)."""
    from training import services

    return train_queued(services.submit(owner, request)[0])


def train_queued(run: Run) -> Run:
    """Train a queued run with the real trainer in this process, and finish it as the worker does."""
    from railyard_trainer import train
    from railyard_trainer.storage import open_store
    from training import states, worker

    job = launched(run, running=True)
    train.run(run.spec, open_store(run.artifact_uri))
    assert worker.finish_succeeded(job, run)
    assert states.end_job(job, states.JobStatus.SUCCEEDED)
    run.refresh_from_db()
    return run


@pytest.fixture
def trained_run(alice, workflows, fraud_request) -> Run:
    return train_in_process(alice, fraud_request)


@pytest.fixture
def cluster(tmp_path, settings, monkeypatch):
    """A Kubernetes API server with a Job controller (tests/kubernetes_cluster.py), and Railyard pointed at it."""
    from tests.kubernetes_cluster import NAMESPACE, Cluster
    from training import executors

    (tmp_path / "cluster").mkdir()
    cluster = Cluster(tmp_path / "cluster", NAMESPACE).start()
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig()))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings.RAILYARD = {
        **settings.RAILYARD,
        "EXECUTOR": "kubernetes",
        "K8S_NAMESPACE": NAMESPACE,
        "TRAINER_IMAGE": "railyard-trainer:test",
        "K8S_REQUEST_TIMEOUT_SECONDS": 2,
    }
    executors._instances.clear()
    yield cluster
    cluster.stop()
    executors._instances.clear()


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium: Playwright's own browser download does not work here."""
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture
def small(tmp_path) -> Path:
    """One row a day from 2025-12-25 to 2026-03-10, so rows fall both sides of every boundary."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2025-12-25", "2026-03-10", freq="D")
    x = rng.normal(size=len(days))
    frame = pd.DataFrame(
        {
            "day": days,
            "x": x,
            "colour": rng.choice(["red", "green", None], size=len(days)),
            "y": (x + rng.normal(scale=0.5, size=len(days)) > 0).astype(int),
        }
    )
    path = tmp_path / "small.parquet"
    frame.to_parquet(path)
    return path


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client
