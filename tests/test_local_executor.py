"""The local executor: a process per job, a concurrency limit, cancel, and crashes of either side.

Tests that must catch the trainer mid-run replace the trainer command with a process that
sleeps, so that timing does not depend on how fast a model trains; the executor cannot tell
the difference, and the supervisor, process group and worker are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for_terminal, wait_until
from training import executors, services, states, worker
from training.executors import JobRef, job_ref
from training.executors.local import LocalExecutor
from training.models import Job, Run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("workflows")]

SLEEPER = [sys.executable, "-c", "import time; print('training', flush=True); time.sleep(120)"]


@pytest.fixture
def sleeping_trainer(settings):
    settings.RAILYARD = {**settings.RAILYARD, "TRAINER_COMMAND": SLEEPER}


@pytest.fixture(autouse=True)
def fresh_executor():
    executors._instances.clear()
    yield
    executors._instances.clear()


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # reaped since the signal was sent
        return False
    return state != "Z"


def job_of(run: Run) -> Job:
    return run.current_job()


def ref_of(run: Run) -> JobRef:
    return job_ref(job_of(run))


def handle(run: Run) -> dict:
    return job_of(run).handle


def running_run(alice, fraud_request) -> tuple[Run, int]:
    """A launched run and the pid of its trainer process."""
    run, _ = services.submit(alice, fraud_request)
    worker.reconcile()
    run.refresh_from_db()
    assert run.status == "running"
    supervisor = handle(run)["pid"]
    log = Path(handle(run)["work_dir"]) / "log.txt"
    wait_until(lambda: children(supervisor) and "training" in log.read_text())
    return run, children(supervisor)[0]


def test_a_killed_trainer_fails_the_run_with_a_reason(alice, fraud_request, sleeping_trainer):
    run, trainer = running_run(alice, fraud_request)

    os.kill(trainer, signal.SIGKILL)
    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason == "the trainer was killed by SIGKILL (the machine may have run out of memory)"
    assert run.artifacts.get(name="log.txt").size == len("training\n")
    job = job_of(run)
    assert (job.status, job.cause, job.message) == ("failed", "crash", run.failure_reason)


def test_a_run_whose_processes_vanished_with_the_worker_is_failed(alice, fraud_request, sleeping_trainer):
    run, _ = running_run(alice, fraud_request)

    # The machine restarts: supervisor and trainer die together, and a new worker process starts.
    os.killpg(handle(run)["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(handle(run)["pid"]))
    executors._instances.clear()
    worker.reconcile()

    run.refresh_from_db()
    assert run.status == "failed"
    assert "disappeared without recording an exit code" in run.failure_reason
    assert run.events.last().reason == run.failure_reason
    assert (job_of(run).status, job_of(run).cause) == ("lost", "disappeared")


def test_a_restarted_worker_adopts_a_trainer_that_is_still_running(alice, fraud_request):
    run, _ = services.submit(alice, fraud_request)
    worker.reconcile()
    executors._instances.clear()  # the worker restarts; the trainer runs on in its own session

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert run.events.filter(new_status="submitted").count() == 1
    assert list(run.jobs.values_list("attempt", "status", "cause")) == [(1, "succeeded", "")]


def test_cancel_stops_a_running_trainer(
    alice, fraud_request, sleeping_trainer, monkeypatch, django_capture_on_commit_callbacks
):
    from django_q.conf import Conf

    run, trainer = running_run(alice, fraud_request)
    monkeypatch.setattr(Conf, "SYNC", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.cancel(run, actor="alice")

    assert not alive(trainer)
    run.refresh_from_db()
    assert run.status == "cancelled"
    exit_file = Path(handle(run)["work_dir"]) / "exit.json"
    assert json.loads(exit_file.read_text()) == {"exit_code": -signal.SIGTERM}
    worker.reconcile()
    run.refresh_from_db()
    assert run.status == "cancelled"  # terminal: a later reconcile does not touch it


def test_it_launches_no_more_than_the_concurrency_limit(alice, fraud_request, sleeping_trainer, settings):
    settings.RAILYARD = {**settings.RAILYARD, "LOCAL_CONCURRENCY": 1}
    first, _ = services.submit(alice, fraud_request)
    second, _ = services.submit(alice, fraud_request)

    worker.reconcile()
    worker.reconcile()
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "running", second.pk: "queued"}

    first.refresh_from_db()
    services.cancel(first, actor="alice")
    worker.stop(first.pk)  # the stop task that cancelling queues
    assert job_of(first).status == "cancelled"
    worker.reconcile()
    second.refresh_from_db()
    assert second.status == "running"  # launched and observed in the same pass
    LocalExecutor().cancel(ref_of(second))


def test_launching_twice_adopts_the_first_process(alice, fraud_request, sleeping_trainer):
    run, _ = services.submit(alice, fraud_request)
    job = states.open_job(run)
    executor = LocalExecutor()
    first = executor.launch(worker.job_inputs(job, run, executor))
    second = LocalExecutor().launch(worker.job_inputs(job, run, executor))
    assert first == second
    assert Path(first["work_dir"]) == LocalExecutor.work_dir(job.pk)
    executor.cancel(JobRef(job.pk, first))
    assert not alive(first["pid"])


def test_a_run_over_its_time_limit_is_stopped_and_failed(alice, fraud_request, sleeping_trainer, settings):
    run, trainer = running_run(alice, fraud_request)
    settings.RAILYARD = {**settings.RAILYARD, "RUN_TIMEOUT_SECONDS": 0}

    worker.reconcile()

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason == "the run exceeded its time limit of 0 seconds"
    assert not alive(trainer)


def test_a_trainer_and_its_children_die_when_the_supervisor_disappears(alice, fraud_request, settings, tmp_path):
    spawner = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(tmp_path / 'grandchild')!r}, 'w').write(str(child.pid))\n"
        "print('training', flush=True)\n"
        "time.sleep(120)\n"
    )
    settings.RAILYARD = {**settings.RAILYARD, "TRAINER_COMMAND": [sys.executable, "-c", spawner]}
    run, trainer = running_run(alice, fraud_request)
    wait_until(lambda: (tmp_path / "grandchild").exists())
    grandchild = int((tmp_path / "grandchild").read_text())

    os.kill(handle(run)["pid"], signal.SIGKILL)  # the supervisor alone
    wait_until(lambda: not alive(trainer))  # the trainer dies with it at once
    worker.reconcile()

    run.refresh_from_db()
    assert run.status == "failed"
    assert "disappeared without recording an exit code" in run.failure_reason
    wait_until(lambda: not alive(grandchild))  # and what the trainer started is killed with the group


def test_a_repeated_launch_never_starts_a_second_trainer_while_the_first_supervisor_lives(
    alice, fraud_request, sleeping_trainer
):
    """A worker that died between starting the supervisor and recording it: the next launch adopts."""
    import fcntl
    import threading

    run, _ = services.submit(alice, fraud_request)
    job = states.open_job(run)
    directory = LocalExecutor().work_dir(job.pk)
    directory.mkdir(parents=True)
    # Play a supervisor that has started (it holds the attempt's lock) but not yet written process.json.
    lock = open(directory / "supervisor.lock", "a")  # noqa: SIM115 - held across the test
    fcntl.flock(lock, fcntl.LOCK_EX)
    adopted: list[dict] = []
    inputs = worker.job_inputs(job, run, LocalExecutor())
    launcher = threading.Thread(target=lambda: adopted.append(LocalExecutor().launch(inputs)))
    launcher.start()
    time.sleep(1.0)
    assert launcher.is_alive()  # waiting for the supervisor's record, not starting another
    assert not (directory / "exit.json").exists()
    assert not (directory / "spec.json").exists()

    handle = {"pid": os.getpid(), "start_ticks": None, "work_dir": str(directory)}
    (directory / "process.json").write_text(json.dumps(handle))
    launcher.join(timeout=30)
    lock.close()

    assert adopted == [handle]


def test_a_trainer_sees_none_of_the_workers_secrets(alice, fraud_request, settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://railyard:hunter2@db/railyard")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    dump = "import json, os; print(json.dumps(sorted(os.environ)), flush=True)"
    settings.RAILYARD = {**settings.RAILYARD, "TRAINER_COMMAND": [sys.executable, "-c", dump]}
    run, _ = services.submit(alice, fraud_request)
    run = wait_for_terminal(run, worker.reconcile)

    names = set(json.loads(LocalExecutor().logs(ref_of(run))))

    assert os.environ["SECRET_KEY"]  # the worker has one
    assert "SECRET_KEY" not in names
    assert "DATABASE_URL" not in names
    assert {"AWS_ACCESS_KEY_ID", "OPENBLAS_CORETYPE", "RAILYARD_DATA_ROOTS", "PATH"} <= names


@pytest.mark.parametrize(
    ("cores", "concurrency", "limit", "threads"), [(2, 2, "4", 1), (16, 2, "4", 4), (16, 4, "2.5", 2)]
)
def test_a_trainer_gets_its_profiles_cpus_or_its_share_of_the_machine(
    alice, fraud_request, settings, monkeypatch, cores, concurrency, limit, threads
):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    profiles = {**settings.RAILYARD["COMPUTE_RESOURCES"]}
    profiles["cpu"] = {**profiles["cpu"], "limits": {**profiles["cpu"]["limits"], "cpu": limit}}
    dump = "import json, os; print(json.dumps(dict(os.environ)), flush=True)"
    settings.RAILYARD = {
        **settings.RAILYARD,
        "TRAINER_COMMAND": [sys.executable, "-c", dump],
        "LOCAL_CONCURRENCY": concurrency,
        "COMPUTE_RESOURCES": profiles,
    }
    run, _ = services.submit(alice, fraud_request)
    run = wait_for_terminal(run, worker.reconcile)

    env = json.loads(LocalExecutor().logs(ref_of(run)))

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        assert env[name] == str(threads)
    assert env["RAILYARD_TRAINER_THREADS"] == str(threads)


def test_the_trainer_holds_its_thread_pools_to_its_budget(alice, fraud_request, settings, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    settings.RAILYARD = {**settings.RAILYARD, "LOCAL_CONCURRENCY": 2}
    run, _ = services.submit(alice, fraud_request)

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert " threads=1\n" in LocalExecutor().logs(ref_of(run))


#: A network whose second layer alone would take 115 GB: more than any profile's memory.
HUGE_NETWORK = {"hidden_layer_sizes": [120000, 120000], "max_iter": 1}


def out_of_memory_request(fraud_request: dict, **retry: bool) -> dict:
    train = {**fraud_request["train"], "workflow_name": "neural_network", "custom_params": HUGE_NETWORK}
    return {**fraud_request, "train": train, **({"retry": retry} if retry else {})}


def test_a_trainer_out_of_memory_is_retried_once_on_the_next_larger_profile(alice, fraud_request):
    run, _ = services.submit(alice, out_of_memory_request(fraud_request))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason.startswith("out of memory: the trainer ran out of memory")
    assert (run.attempt, run.compute_resource) == (2, "highmem")
    assert list(run.jobs.order_by("attempt").values_list("attempt", "compute_resource", "status", "cause")) == [
        (1, "cpu", "failed", "oom"),
        (2, "highmem", "failed", "oom"),  # once: the largest profile has no larger one, and it was retried
    ]
    retried = run.events.get(new_status="queued", old_status__in=["submitted", "running"])
    assert retried.reason == "retried on highmem after running out of memory on cpu: the trainer ran out of memory"
    assert {a.attempt for a in run.artifacts.filter(name="error.json")} == {2}
    assert run.artifacts.filter(name="log.txt", attempt=1).exists()


def test_a_request_may_opt_out_of_retries_on_memory(alice, fraud_request):
    run, _ = services.submit(alice, out_of_memory_request(fraud_request, on_oom=False))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert list(run.jobs.values_list("attempt", "compute_resource", "cause")) == [(1, "cpu", "oom")]


def test_a_local_trainer_may_use_no_more_memory_than_its_profile_allows(alice, fraud_request, settings):
    dump = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], flush=True)"
    settings.RAILYARD = {**settings.RAILYARD, "TRAINER_COMMAND": [sys.executable, "-c", dump]}
    run, _ = services.submit(alice, fraud_request)

    run = wait_for_terminal(run, worker.reconcile)

    assert int(LocalExecutor().logs(ref_of(run)).split()[0]) == 8 * 2**30  # the cpu profile's 8Gi
