"""Several `run_worker` processes at once, on PostgreSQL: every run launched exactly once, none lost,
whatever happens to a worker (kill -9 at random points) or to the cluster's API (faults).

The local runs use `tests/quick_trainer.py`, which records each start in a ledger, so that a run
started twice would show twice; the worker, supervisor and store are the real ones.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.workers import QUICK_TRAINER, start_worker, worker_env
from training import services
from training.models import Job, JobRun, Run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several workers need PostgreSQL's row locks"),
]


def local_env(tmp_path: Path, ledger: Path) -> dict[str, str]:
    return worker_env(
        tmp_path,
        RAILYARD_TRAINER_COMMAND=f"{sys.executable} {QUICK_TRAINER} {ledger}",
        RAILYARD_LOCAL_CONCURRENCY="6",
        RAILYARD_LEASE_SECONDS="3",
    )


def submit_many(owner, request: dict, count: int) -> list[int]:
    return [services.submit(owner, request)[0].pk for _ in range(count)]


def wait_all_terminal(ids: list[int], timeout: float, tmp_path: Path) -> None:
    deadline = time.monotonic() + timeout
    active = Run.objects.filter(pk__in=ids).exclude(status__in=["succeeded", "failed", "cancelled"])
    while active.exists():
        if time.monotonic() > deadline:
            left = dict(active.values_list("pk", "status"))
            raise AssertionError(f"runs not finished: {left}\n{logs(tmp_path)}")
        time.sleep(0.5)


def logs(tmp_path: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("worker-*.log")))


def stop(workers: list[subprocess.Popen]) -> list[int]:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    return [process.wait(timeout=60) for process in workers]


def launches(ledger: Path) -> collections.Counter[str]:
    return collections.Counter(line.split()[0] for line in ledger.read_text().splitlines())


def trainers_left(work_dir: Path) -> list[str]:
    """Processes still running in a job's work folder (supervisors and trainers)."""
    left = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(work_dir / "jobs")):
                left.append(entry.name)
        except OSError:
            continue
    return left


def assert_each_launched_once(ids: list[int], ledger: Path) -> None:
    runs = dict(Run.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert collections.Counter(runs.values()) == {"succeeded": len(ids)}
    started = launches(ledger)
    assert sorted(started) == sorted(str(i) for i in ids)  # every run's trainer started…
    assert [run for run, times in started.items() if times > 1] == []  # …exactly once
    assert JobRun.objects.filter(run_id__in=ids).count() == len(ids)
    assert collections.Counter(Job.objects.filter(runs__pk__in=ids).values_list("status", flat=True)) == {
        "succeeded": len(ids)
    }


def test_three_workers_launch_each_of_200_runs_exactly_once(alice, workflows, fraud_request, settings, tmp_path):
    ledger = tmp_path / "ledger"
    ledger.touch()
    ids = submit_many(alice, fraud_request, 200)
    env = local_env(tmp_path, ledger)
    workers = [start_worker(tmp_path, "--no-cluster", name=f"worker-{n}", env=env) for n in range(3)]
    try:
        wait_all_terminal(ids, 900, tmp_path)
    finally:
        codes = stop(workers)

    assert codes == [0, 0, 0], logs(tmp_path)
    assert_each_launched_once(ids, ledger)
    assert trainers_left(Path(settings.RAILYARD["WORK_DIR"])) == []


def test_workers_killed_at_random_points_lose_no_run_and_launch_none_twice(
    alice, workflows, fraud_request, settings, tmp_path
):
    ledger = tmp_path / "ledger"
    ledger.touch()
    env = local_env(tmp_path, ledger)
    rng = random.Random(20261125)
    ids = submit_many(alice, fraud_request, 40)
    workers = [start_worker(tmp_path, "--no-cluster", name=f"worker-{n}", env=env) for n in range(2)]
    kills = 0
    try:
        while kills < 30:
            time.sleep(rng.uniform(0.2, 2.5))
            victim = rng.randrange(len(workers))
            workers[victim].kill()  # SIGKILL: no clean-up of any kind
            workers[victim].wait(timeout=30)
            kills += 1
            workers[victim] = start_worker(tmp_path, "--no-cluster", name=f"worker-{victim}", env=env)
            if not Run.objects.filter(pk__in=ids, status="queued").exists():
                ids += submit_many(alice, fraud_request, 10)  # keep work in hand for the next kills
        wait_all_terminal(ids, 900, tmp_path)
    finally:
        codes = stop(workers)

    assert kills >= 30
    assert codes == [0, 0], logs(tmp_path)
    assert_each_launched_once(ids, ledger)
    deadline = time.monotonic() + 60
    while trainers_left(Path(settings.RAILYARD["WORK_DIR"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trainers_left(Path(settings.RAILYARD["WORK_DIR"])) == []


def test_two_workers_ride_out_an_api_that_fails_three_calls_in_ten(alice, workflows, fraud_request, cluster, tmp_path):
    from tests.kubernetes_cluster import NAMESPACE

    ids = submit_many(alice, fraud_request, 12)
    cluster.emulator.fault_rate = 0.3
    env = worker_env(
        tmp_path,
        KUBECONFIG=str(cluster.kubeconfig()),
        RAILYARD_EXECUTOR="kubernetes",
        RAILYARD_K8S_NAMESPACE=NAMESPACE,
        RAILYARD_TRAINER_IMAGE="railyard-trainer:test",
        RAILYARD_K8S_REQUEST_TIMEOUT="1",
        RAILYARD_LEASE_SECONDS="5",
    )
    workers = [start_worker(tmp_path, "--no-cluster", name=f"worker-{n}", env=env) for n in range(2)]
    try:
        wait_all_terminal(ids, 900, tmp_path)
        alive = [process.poll() is None for process in workers]
    finally:
        cluster.emulator.fault_rate = 0.0
        codes = stop(workers)

    assert alive == [True, True], logs(tmp_path)  # no worker crashed
    assert codes == [0, 0], logs(tmp_path)
    runs = dict(Run.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert collections.Counter(runs.values()) == {"succeeded": len(ids)}, logs(tmp_path)
    names = [Job.objects.get(runs__pk=pk).handle["job"] for pk in ids]
    assert sorted(cluster.emulator.created_jobs) == sorted(names)  # one Job per run…
    assert set(cluster.emulator.created_jobs.values()) == {1}  # …created once
    assert "Traceback" not in logs(tmp_path)
