"""A run's log with the Kubernetes executor: read from its own pod while it trains, cached for every
viewer, and kept when the cluster cannot give it (the trainer's own copy in the store stands in)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import wait_for_terminal
from tests.kubernetes_cluster import NAMESPACE, job_name_of, submitted
from training import worker
from training.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("workflows")]


def test_logs_are_read_from_the_pod_while_the_trainer_runs(cluster, alice, api, fraud_request):
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.wait_running(job_name_of(run))
    worker.reconcile()

    body = api.get(f"/api/v1/runs/{run.pk}/logs", {"tail": 100}).json()

    assert body["status"] == "running"
    assert "stage=load started" in body["log"]


def test_a_runs_log_is_read_from_its_own_pods_once_per_interval_for_all_viewers(
    cluster, alice, api, fraud_request, monkeypatch
):
    from training import logs

    monkeypatch.setattr(logs, "LIVE_LOG_SECONDS", 600)  # one interval, however slow this machine is
    cluster.pause_trainers = True
    submitted(alice, fraud_request)  # another run, whose pods the log read must not list
    run = submitted(alice, fraud_request)
    cluster.wait_paused(job_name_of(run))
    worker.reconcile()
    cluster.emulator.list_calls.clear()
    reads = cluster.emulator.calls[("FETCH", "pods")]

    bodies = [api.get(f"/api/v1/runs/{run.pk}/logs").json()["log"] for _ in range(5)]

    assert all("stage=load started" in body for body in bodies)
    assert cluster.emulator.calls[("FETCH", "pods")] == reads + 1  # one log read for five viewers
    selectors = [p.get("labelSelector") for plural, p in cluster.emulator.list_calls if plural == "pods"]
    assert selectors == [f"app.kubernetes.io/managed-by=railyard,railyard.dev/job-id={run.current_job().pk}"]


def test_a_live_log_the_cluster_will_not_give_falls_back_to_the_trainers_copy(cluster, alice, api, fraud_request):
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.wait_running(job_name_of(run))  # paused (SIGSTOP) once its live log has a line
    cluster.emulator.inject("list", "pods", 403)

    body = api.get(f"/api/v1/runs/{run.pk}/logs").json()

    assert "stage=load started" in body["log"]  # what the trainer copied to the store as it went


def test_a_log_that_cannot_be_had_at_all_is_explained_not_an_error(cluster, alice, api, fraud_request):
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.wait_paused(job_name_of(run))
    store_log = Path(run.artifact_uri.removeprefix("file://")) / "log.txt"
    store_log.unlink(missing_ok=True)
    cluster.emulator.inject("list", "pods", 403)

    body = api.get(f"/api/v1/runs/{run.pk}/logs").json()

    assert not store_log.exists()  # the trainer is stopped (SIGSTOP): it wrote no newer copy
    assert body["log"] == (
        "(the live log cannot be read right now: Railyard's service account may not list pods in namespace "
        "'railyard-test' (403 Forbidden); check its Role in deploy/base/rbac.yaml)"
    )


def finished_trainer(cluster, alice, fraud_request) -> Run:
    run = submitted(alice, fraud_request)
    cluster.wait_running(job_name_of(run)).process.wait()
    return run


def kept_log(run: Run) -> str:
    return Path(run.artifacts.get(name="log.txt").uri.removeprefix("file://")).read_text()


def test_a_run_whose_pod_log_is_refused_keeps_the_trainers_copy(cluster, alice, fraud_request):
    run = finished_trainer(cluster, alice, fraud_request)
    cluster.emulator.inject("fetch", "pods", 403)  # reading the pod's log is refused

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert "stage=serialize done" in kept_log(run)
    assert run.artifacts.filter(name="model.joblib").exists()


def test_a_run_keeps_its_log_when_every_pod_log_read_fails(cluster, alice, fraud_request):
    run = finished_trainer(cluster, alice, fraud_request)
    cluster.emulator.inject("fetch", "pods", 500, times=10_000)

    run = wait_for_terminal(run, worker.reconcile)
    cluster.emulator.faults.clear()

    assert run.status == "succeeded", run.failure_reason
    log = kept_log(run)
    assert "stage=serialize done" in log
    assert f"run {run.pk} finished" in log


def test_a_run_whose_pod_is_gone_keeps_the_trainers_copy_of_its_log(cluster, alice, fraud_request):
    run = finished_trainer(cluster, alice, fraud_request)
    deadline = time.monotonic() + 300
    while not any(
        c["type"] == "Complete" for c in cluster.job(job_name_of(run)).get("status", {}).get("conditions", [])
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for pod in cluster.objects("pods"):  # the Job's TTL, or a node's loss, removed its pod
        cluster.core.delete_namespaced_pod(pod, NAMESPACE)

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert "stage=serialize done" in kept_log(run)


def test_finishing_waits_for_a_log_that_is_nowhere_yet(cluster, alice, fraud_request):
    run = finished_trainer(cluster, alice, fraud_request)
    (Path(run.artifact_uri.removeprefix("file://")) / "log.txt").unlink()
    cluster.emulator.inject("fetch", "pods", 500, times=10_000)

    for _ in range(3):
        worker.reconcile()
    run.refresh_from_db()
    assert not run.state.is_terminal  # finished by its trainer, but its log cannot be had yet

    cluster.emulator.faults.clear()
    run = wait_for_terminal(run, worker.reconcile)
    assert run.status == "succeeded", run.failure_reason
    assert "stage=serialize done" in kept_log(run)
