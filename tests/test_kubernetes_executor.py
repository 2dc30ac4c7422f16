"""The Kubernetes executor against an API server over HTTP, with Jobs run by a test controller.

See `tests/kubernetes_cluster.py` for what plays the cluster: kmock's API server (the real
`kubernetes` client talks to it through a kubeconfig file) and a controller that runs each
Job's container command here.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.db import connection
from django_q.conf import Conf
from rest_framework.test import APIClient

from tests.conftest import wait_for_terminal
from tests.kubernetes_cluster import NAMESPACE, job_name_of, message_containing, submitted
from training import executors, services, states, worker
from training.executors import get_executor
from training.executors.kubernetes import manifests
from training.models import Job, Run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("workflows")]


def test_a_run_submitted_over_rest_runs_as_a_job_to_success(cluster, alice, api, fraud_request):
    response = api.post("/api/v1/runs", data=json.dumps(fraud_request), content_type="application/json")
    run = Run.objects.get(pk=response.json()["id"])

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert run.executor == "kubernetes"
    job = run.current_job()
    assert job_name_of(run) == f"railyard-job-{job.pk}"
    assert [e.new_status for e in run.events.all()] == ["queued", "submitted", "running", "succeeded"]
    assert [e.new_status for e in job.events.all()] == ["pending", "launched", "running", "succeeded"]
    assert (job.executor, job.attempt, job.cause) == ("kubernetes", 1, "")
    assert response.json()["id"] == run.pk
    jobs = api.get(f"/api/v1/runs/{run.pk}").json()["jobs"]
    assert [(j["id"], j["attempt"], j["executor"], j["status"], j["cause"]) for j in jobs] == [
        (job.pk, 1, "kubernetes", "succeeded", "")
    ]
    assert {"started_at", "finished_at"} <= set(jobs[0])
    assert {"model.joblib", "metrics.json", "holdout_scores.parquet", "log.txt"} <= set(
        run.artifacts.values_list("name", flat=True)
    )
    log = Path(run.artifacts.get(name="log.txt").uri.removeprefix("file://")).read_text()
    assert "stage=serialize done" in log
    assert run.metrics["roc_auc"] > 0.5


def test_it_lists_jobs_and_pods_once_per_pass_by_label_selector(cluster, alice, fraud_request):
    cluster.pause_trainers = True
    for _ in range(3):
        submitted(alice, fraud_request)
    cluster.emulator.list_calls.clear()

    worker.reconcile()

    listed = [(plural, params) for plural, params in cluster.emulator.list_calls if "labelSelector" in params]
    assert [plural for plural, _ in listed] == ["jobs", "pods"]
    for _, params in listed:
        assert params["labelSelector"] == "app.kubernetes.io/managed-by=railyard"
        assert params["limit"] == "5000"


def test_it_pages_through_long_job_lists(cluster, alice, fraud_request, monkeypatch):
    from training.executors import kubernetes

    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 2)
    cluster.pause_trainers = True
    runs = [submitted(alice, fraud_request) for _ in range(5)]

    jobs = get_executor("kubernetes").list_jobs()

    assert sorted(jobs) == sorted(manifests.job_name(r.current_job().pk) for r in runs)
    # (the test controller lists Jobs too, without a selector; only the executor's calls count)
    job_lists = [p for plural, p in cluster.emulator.list_calls if plural == "jobs" and "labelSelector" in p][-3:]
    assert [p.get("continue") for p in job_lists] == [None, "2", "4"]


def test_the_job_matches_the_compute_profile(cluster, alice, fraud_request, settings):
    fraud_request["compute_resource"] = "gpu"
    run = submitted(alice, fraud_request)

    job = cluster.job(job_name_of(run))

    profile = settings.RAILYARD["COMPUTE_RESOURCES"]["gpu"]
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": profile["requests"], "limits": profile["limits"]}
    assert pod["nodeSelector"] == profile["node_selector"]
    assert pod["tolerations"] == profile["tolerations"]
    assert pod["affinity"] == profile["affinity"]
    assert pod["containers"][0]["image"] == "railyard-trainer:test"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "railyard",
        "railyard.dev/job-id": str(run.current_job().pk),
        "railyard.dev/run-id": str(run.pk),
        "railyard.dev/attempt": "1",
        "railyard.dev/project": "fraud",
        "railyard.dev/workflow": "gradient_boosting",
    }
    config_map = cluster.core.read_namespaced_config_map(job_name_of(run), NAMESPACE)
    assert json.loads(config_map.data["spec.json"]) == run.spec
    assert [(o.kind, o.name, o.uid) for o in config_map.metadata.owner_references] == [
        ("Job", job_name_of(run), job["metadata"]["uid"])
    ]


def test_a_repeated_launch_adopts_the_job_it_made(cluster, alice, fraud_request):
    cluster.pause_trainers = True
    run, _ = services.submit(alice, fraud_request)
    job = states.open_job(run)
    executor = get_executor("kubernetes")

    first = executor.launch(worker.job_inputs(job, run, executor))
    executors._instances.clear()  # the worker crashed before recording the launch, and restarted
    again = get_executor("kubernetes").launch(worker.job_inputs(job, run, get_executor("kubernetes")))

    assert first == again
    assert cluster.objects("jobs") == [first["job"]]


def test_an_oom_killed_trainer_fails_the_run_saying_so_when_the_request_opts_out_of_retries(
    cluster, alice, fraud_request, settings
):
    settings.RAILYARD = {**settings.RAILYARD, "K8S_BACKOFF_LIMIT": 0}
    cluster.pause_trainers = True
    run = submitted(alice, {**fraud_request, "retry": {"on_oom": False}})

    cluster.oom_kill(job_name_of(run))
    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason == (
        "the trainer ran out of memory (OOMKilled) with a limit of 8Gi on compute resource 'cpu'; "
        "a larger profile may help"
    )
    assert list(run.jobs.values_list("attempt", "status", "cause")) == [(1, "failed", "oom")]


def test_an_oom_killed_run_is_retried_once_on_the_next_larger_profile(cluster, alice, api, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "K8S_BACKOFF_LIMIT": 0}
    cluster.node_labels.append({"railyard.dev/pool": "highmem"})
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    first = job_name_of(run)
    cluster.pause_trainers = False  # the retry is left to finish

    cluster.oom_kill(first)
    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert (run.attempt, run.compute_resource) == (2, "highmem")
    assert list(run.jobs.order_by("attempt").values_list("attempt", "compute_resource", "status", "cause")) == [
        (1, "cpu", "failed", "oom"),
        (2, "highmem", "succeeded", ""),
    ]
    retried = run.events.get(old_status__in=["submitted", "running"], new_status="queued")
    assert retried.reason.startswith("retried on highmem after running out of memory on cpu: ")
    second = cluster.job(job_name_of(run))
    assert second["metadata"]["name"] != first
    assert second["spec"]["template"]["spec"]["nodeSelector"] == {"railyard.dev/pool": "highmem"}
    # The first attempt kept its log; the second wrote into a folder of its own.
    assert run.artifacts.filter(attempt=1, name="log.txt").exists()
    assert run.artifacts.get(attempt=2, name="model.joblib").uri.endswith(f"/runs/{run.pk}/attempt-2/model.joblib")
    body = api.get(f"/api/v1/runs/{run.pk}").json()
    assert [(j["attempt"], j["compute_resource"], j["cause"]) for j in body["jobs"]] == [
        (1, "cpu", "oom"),
        (2, "highmem", ""),
    ]


def test_a_crash_is_retried_by_the_job_within_its_backoff_limit(cluster, alice, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "K8S_BACKOFF_LIMIT": 1}
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.pause_trainers = False  # the second pod is left to finish
    cluster.oom_kill(job_name_of(run))

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "succeeded", run.failure_reason
    assert cluster.jobs[job_name_of(run)].pods == 2


def test_a_run_past_its_deadline_fails_with_the_reason(cluster, alice, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "RUN_TIMEOUT_SECONDS": 1}
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason.startswith("the run exceeded its time limit of 1 seconds (DeadlineExceeded: ")


def test_an_unschedulable_pod_shows_why_on_the_run(cluster, alice, api, fraud_request):
    fraud_request["compute_resource"] = "gpu"
    run = submitted(alice, fraud_request)

    message = message_containing(run, "Unschedulable")

    assert run.status == "submitted"
    assert message == (
        "no node can run the trainer yet (Unschedulable: 0/1 nodes are available: "
        "1 node(s) didn't match Pod's node affinity/selector.)"
    )
    assert api.get(f"/api/v1/runs/{run.pk}").json()["status_message"] == run.status_message


def test_an_image_that_cannot_be_pulled_shows_on_the_run(cluster, alice, fraud_request):
    cluster.broken_images.add("railyard-trainer:test")
    run = submitted(alice, fraud_request)

    message = message_containing(run, "ImagePullBackOff")

    assert message == (
        'the trainer image cannot be pulled (ImagePullBackOff: Back-off pulling image "railyard-trainer:test")'
    )


def test_a_job_deleted_outside_railyard_fails_its_run(cluster, alice, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "K8S_MISSING_GRACE_SECONDS": 0}
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.wait_running(job_name_of(run))

    cluster.batch.delete_namespaced_job(job_name_of(run), NAMESPACE)
    worker.reconcile()

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason == f"the Job {job_name_of(run)} was deleted outside Railyard"
    job = run.current_job()
    assert (job.status, job.cause) == ("lost", "disappeared")


def test_a_job_missing_from_a_listing_is_read_by_name_before_its_run_is_failed(cluster, alice, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "K8S_MISSING_GRACE_SECONDS": 0}
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    cluster.wait_running(job_name_of(run))
    cluster.emulator.hidden.add(job_name_of(run))
    reads = cluster.emulator.calls[("FETCH", "jobs")]

    worker.reconcile()

    run.refresh_from_db()
    assert not run.state.is_terminal  # not failed as "deleted outside Railyard"
    assert cluster.emulator.calls[("FETCH", "jobs")] > reads
    cluster.resume_trainers()
    cluster.emulator.hidden.clear()
    assert wait_for_terminal(run, worker.reconcile).status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_launch_each_run_once_and_delete_no_job(cluster, alice, fraud_request):
    runs = [services.submit(alice, fraud_request)[0] for _ in range(6)]
    barrier = threading.Barrier(3)
    done = threading.Event()
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                worker.dispatch()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait()
    try:
        for run in runs:
            wait_for_terminal(run, worker.reconcile, timeout=600)  # the reconcile loop dispatches too
    finally:
        done.set()
        for thread in threads:
            thread.join()

    assert errors == []
    assert [run.status for run in runs] == ["succeeded"] * len(runs), [run.failure_reason for run in runs]
    assert cluster.emulator.calls[("CREATE", "jobs")] == len(runs)
    assert cluster.emulator.calls[("DELETE", "jobs")] == 0
    for run in runs:
        assert [e.new_status for e in run.events.all()] == ["queued", "submitted", "running", "succeeded"]


def test_a_lost_launch_race_keeps_the_winners_job(cluster, alice, fraud_request):
    """Two dispatchers that both pass the lease (one stale) launch one run: the loser adopts and keeps the Job."""
    run, _ = services.submit(alice, fraud_request)
    stale = states.open_job(run)  # a dispatcher read the pending job, then stalled
    cluster.pause_trainers = True
    worker.dispatch()

    assert worker.launch(stale, Run.objects.with_related().get(pk=run.pk)) is False

    run.refresh_from_db()
    assert run.status in ("submitted", "running")
    assert cluster.emulator.calls[("DELETE", "jobs")] == 0
    assert job_name_of(run) in cluster.objects("jobs")
    cluster.resume_trainers()
    assert wait_for_terminal(run, worker.reconcile).status == "succeeded"


def test_a_bad_data_exit_fails_at_once_with_the_trainers_reason(cluster, alice, fraud_request):
    fraud_request["data"]["filters"].append({"feature_name": "amount", "predicate": "Gt", "feature_value": 10**9})
    run = submitted(alice, fraud_request)

    run = wait_for_terminal(run, worker.reconcile)

    assert run.status == "failed"
    assert run.failure_reason.startswith("bad data: no rows left after applying the date range and filters")
    assert (run.current_job().status, run.current_job().cause) == ("failed", "bad_data")
    assert cluster.jobs[job_name_of(run)].pods == 1  # the podFailurePolicy did not retry it


def test_server_errors_and_timeouts_during_launch_are_retried_and_counted(cluster, alice, fraud_request):
    from training.metrics import WORKER

    def errors(cause: str) -> float:
        return WORKER.get_sample_value("railyard_executor_api_errors_total", {"executor": "kubernetes", "cause": cause})

    before = {cause: errors(cause) or 0 for cause in ("500", "timeout")}
    cluster.emulator.inject("create", "jobs", 500, times=2)
    cluster.emulator.inject("create", "configmaps", None)  # hangs past the client's timeout

    run = submitted(alice, fraud_request)

    assert run.status == "submitted"
    assert cluster.objects("jobs") == [job_name_of(run)]
    assert (errors("500") - before["500"], errors("timeout") - before["timeout"]) == (2, 1)


def test_a_cluster_that_keeps_failing_leaves_the_run_queued_for_the_next_pass(cluster, alice, fraud_request):
    cluster.emulator.inject("create", "configmaps", 503, times=4)

    run = submitted(alice, fraud_request)
    assert run.status == "queued"
    assert cluster.objects("jobs") == [manifests.job_name(run.current_job().pk)]  # its pod waits for its spec
    assert cluster.objects("configmaps") == []

    worker.dispatch()  # the next pass, once the cluster answers again, adopts the Job and adds its spec
    run.refresh_from_db()
    assert run.status == "submitted"
    assert cluster.objects("configmaps") == [job_name_of(run)]
    assert wait_for_terminal(run, worker.reconcile).status == "succeeded"
    assert cluster.emulator.created_jobs[job_name_of(run)] == 1


def test_a_refused_spec_fails_the_run_and_takes_its_job_away(cluster, alice, fraud_request):
    cluster.emulator.inject("create", "configmaps", 422)  # e.g. a spec past the ConfigMap size limit

    run = submitted(alice, fraud_request)

    assert run.status == "failed"
    assert run.failure_reason.startswith("could not start the trainer: ")
    assert "create ConfigMaps" in run.failure_reason
    assert cluster.objects("jobs") == []  # no pod waits for a spec that will never come


def test_a_forbidden_launch_fails_the_run_with_a_readable_reason(cluster, alice, fraud_request):
    cluster.emulator.inject("create", "jobs", 403)

    run = submitted(alice, fraud_request)

    assert run.status == "failed"
    assert run.failure_reason == (
        "could not start the trainer: Railyard's service account may not create Jobs in namespace "
        "'railyard-test' (403 Forbidden); check its Role in deploy/base/rbac.yaml"
    )
    assert (run.current_job().status, run.current_job().cause) == ("failed", "refused")


def test_cancel_deletes_the_job_and_stops_the_trainer(
    cluster, alice, fraud_request, monkeypatch, django_capture_on_commit_callbacks
):
    cluster.pause_trainers = True
    run = submitted(alice, fraud_request)
    trainer = cluster.wait_running(job_name_of(run)).process
    monkeypatch.setattr(Conf, "SYNC", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.cancel(run, actor="alice")

    assert cluster.objects("jobs") == []
    assert cluster.objects("configmaps") == []
    trainer.wait(timeout=10)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert (run.current_job().status, run.current_job().cause) == ("cancelled", "cancelled")


def test_the_sweep_removes_jobs_railyard_does_not_track_and_a_pass_stops_unwanted_ones(cluster, alice, fraud_request):
    cluster.pause_trainers = True
    kept = submitted(alice, fraud_request)
    ended = submitted(alice, fraud_request)
    services.cancel(Run.objects.get(pk=ended.pk), actor="alice")  # its stop task never ran
    executor = get_executor("kubernetes")
    made = manifests.job(worker.job_inputs(kept.current_job(), kept, executor), executor.cluster)
    labels = {"app.kubernetes.io/managed-by": "railyard", "railyard.dev/job-id": "999999"}
    stray = {**made, "metadata": {"name": "railyard-job-999999", "namespace": NAMESPACE, "labels": labels}}
    cluster.batch.create_namespaced_job(NAMESPACE, stray)

    assert worker.sweep() == ["railyard-job-999999"]
    worker.reconcile()  # the cancelled run's job is stopped by the next pass

    assert cluster.objects("jobs") == [job_name_of(kept)]
    assert ended.current_job().status == "cancelled"
    assert Job.objects.get(pk=kept.current_job().pk).status in ("launched", "running")


def test_it_reaches_the_cluster_through_kubeconfig(cluster):
    executor = get_executor("kubernetes")
    assert executor.api_client.configuration.host == cluster.url
    assert executor.api_client.configuration.api_key["authorization"] == "Bearer test-token"


def test_anonymous_clients_still_get_401_with_the_kubernetes_executor(cluster):
    assert APIClient().get("/api/v1/compute-resources").status_code == 401


def test_trainers_get_the_s3_settings_but_credentials_only_by_reference(
    cluster, alice, fraud_request, settings, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.storage:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    settings.RAILYARD = {**settings.RAILYARD, "K8S_ENV_FROM_SECRETS": ["railyard-s3"]}
    cluster.broken_images.add("railyard-trainer:test")  # keep it from running: only its spec matters here

    run = submitted(alice, fraud_request)

    container = cluster.job(job_name_of(run))["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["AWS_ENDPOINT_URL"], env["AWS_REGION"]) == ("http://minio.storage:9000", "eu-west-1")
    assert container["envFrom"] == [{"secretRef": {"name": "railyard-s3"}}]
    assert "do-not-leak" not in json.dumps(cluster.job(job_name_of(run)))
    # The cpu profile's limit of 4 CPUs is the trainer's thread budget.
    assert (env["OMP_NUM_THREADS"], env["RAILYARD_TRAINER_THREADS"], env["LOKY_MAX_CPU_COUNT"]) == ("4", "4", "4")
    assert env["RAILYARD_DATA_ROOTS"] == ",".join(str(root) for root in settings.RAILYARD["DATA_ROOTS"])


def test_a_pass_stops_launching_once_the_cluster_does_not_answer(cluster, alice, fraud_request):
    first, _ = services.submit(alice, fraud_request)
    second, _ = services.submit(alice, fraud_request)
    cluster.emulator.inject("create", "configmaps", 503, times=4)  # every retry of one launch

    assert worker.dispatch() == 0

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("queued", "queued")
    assert first.status_message.startswith("waiting: the cluster did not answer when asked to create ConfigMaps")
    assert second.status_message == ""  # not tried: it would only have waited out the same retries
    assert cluster.emulator.faults == []  # the four answers went to the first run's retries, none to the second
    worker.dispatch()
    assert Run.objects.filter(status="submitted").count() == 2
