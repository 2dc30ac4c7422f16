"""Kubernetes benchmarks on PostgreSQL, run by `make bench` (or alone: `python bench/jobs.py`).

- reconcile: API calls and wall time of one pass as in-flight jobs grow (10 … 10,000)
- launch rate: Jobs launched per minute with one and with two dispatcher processes, none twice
- launch latency: queued → submitted with an idle `run_worker`

Against the API server of `tests/kubernetes_cluster.py` without its controller (Jobs are stored
and listed, nothing runs them, so the numbers are Railyard's and the API server's), and a
throwaway database on the PostgreSQL server of BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latency import launch_latencies
from throwaway import database_url, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("BENCH_DATABASE") or f"railyard_bench_{os.getpid()}"
VAR = Path(os.environ.get("BENCH_VAR") or tempfile.mkdtemp(prefix="railyard-bench-jobs-"))
os.environ.update(
    RAILYARD_VAR_DIR=str(VAR),
    DATABASE_URL=database_url(DATABASE),
    DJANGO_SETTINGS_MODULE="railyard_site.settings",
    LOG_LEVEL="ERROR",
    RAILYARD_EXECUTOR="kubernetes",
    RAILYARD_K8S_NAMESPACE="railyard-bench",
    RAILYARD_TRAINER_IMAGE="railyard-trainer:bench",
)
(VAR / "static").mkdir(exist_ok=True)
sys.path.insert(0, str(ROOT))

#: A dispatcher process: waits for the go file, dispatches until no run is left queued, says how many.
DISPATCHER = """
import os, sys, time, django
from pathlib import Path
sys.path.insert(0, {root!r})
django.setup()
from training import worker
from training.models import Run
go = Path({go!r})
while not go.exists():
    time.sleep(0.01)
launched = 0
while True:
    launched += worker.dispatch("kubernetes")
    if not Run.objects.filter(status="queued").exists():
        break
print(launched)
"""


def main() -> None:
    with throwaway_database(DATABASE):
        run_benchmarks()


def setup():
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("sync_workflows", verbosity=0)
    return User.objects.create_user("bench")


def run_benchmarks() -> None:
    from tests.kubernetes_cluster import Cluster

    user = setup()
    (VAR / "cluster").mkdir(exist_ok=True)
    cluster = Cluster(VAR / "cluster", "railyard-bench", run_jobs=False).start()
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig())
    try:
        print("reconcile:", json.dumps(bench_reconcile(cluster, user)))
        cluster.emulator.objects.clear()  # the reconcile benchmark's 20,000 objects are not the launches'
        print("launch rate:", json.dumps(bench_launch_rate(cluster, user)))
        print("launch latency:", json.dumps(bench_launch_latency(cluster, user, runs=20)))
    finally:
        cluster.stop()


def a_request(user) -> dict:
    from training import demo

    paths = demo.write_dataset(VAR / "data" / "bench", n_rows=1000)
    return demo.demo_request(paths["charges"], paths["merchants"])


def add_running_jobs(cluster, user, request: dict, count: int) -> None:
    """`count` more running jobs with their runs, recorded in the database and present in the cluster."""
    from django.utils import timezone

    from training.executors.kubernetes import manifests
    from training.models import Job, JobRun, Project, Run, Workflow
    from training.states import JobStatus, RunStatus

    now = timezone.now()
    project, _ = Project.objects.get_or_create(name="bench")
    workflow = Workflow.objects.get(name="gradient_boosting")
    runs = Run.objects.bulk_create(
        [
            Run(
                owner=user,
                user="bench",
                project=project,
                workflow=workflow,
                compute_resource="cpu",
                request=request,
                spec=request,
                executor="kubernetes",
                status=RunStatus.RUNNING,
                artifact_uri="file:///nowhere",
                submitted_at=now,
                started_at=now,
            )
            for _ in range(count)
        ],
        batch_size=2000,
    )
    jobs = Job.objects.bulk_create(
        [
            Job(
                executor="kubernetes", compute_resource="cpu", status=JobStatus.RUNNING, launched_at=now, started_at=now
            )
            for _ in runs
        ],
        batch_size=2000,
    )
    JobRun.objects.bulk_create([JobRun(job=j, run=r, attempt=1) for j, r in zip(jobs, runs, strict=True)])
    for job, run in zip(jobs, runs, strict=True):
        name = manifests.job_name(job.pk)
        Job.objects.filter(pk=job.pk).update(handle={"job": name, "namespace": cluster.namespace})
        labels = {
            manifests.LABEL_MANAGED_BY: manifests.MANAGED_BY,
            manifests.LABEL_JOB_ID: str(job.pk),
            manifests.LABEL_RUN_ID: str(run.pk),
            manifests.LABEL_ATTEMPT: "1",
        }
        meta = {"name": name, "namespace": cluster.namespace, "labels": labels, "uid": f"uid-{job.pk}"}
        cluster.emulator.objects["batch/v1/jobs", cluster.namespace, name] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {"activeDeadlineSeconds": 21600, "template": {"spec": {"containers": [{"name": "trainer"}]}}},
            "status": {"active": 1},
        }
        cluster.emulator.objects["v1/pods", cluster.namespace, f"{name}-1"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**meta, "name": f"{name}-1", "labels": {**labels, "batch.kubernetes.io/job-name": name}},
            "status": {"phase": "Running", "containerStatuses": [{"name": "trainer", "state": {"running": {}}}]},
        }


def bench_reconcile(cluster, user) -> dict:
    from django.db import connection

    from training import worker
    from training.executors.kubernetes import KubernetesExecutor

    waited = [0.0]  # seconds spent waiting on the API server (the fake's share of a pass)
    call = KubernetesExecutor._call

    def timed_call(self, what, fn, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(self, what, fn, *args, **kwargs)
        finally:
            waited[0] += time.perf_counter() - started

    KubernetesExecutor._call = timed_call

    request = a_request(user)
    results = {}
    total = 0
    for target in (10, 100, 1000, 10_000):
        add_running_jobs(cluster, user, request, target - total)
        total = target
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        worker.reconcile("kubernetes")  # the first pass takes the jobs' leases
        calls, timings, api = [], [], []
        for _ in range(5):
            before = sum(cluster.emulator.calls.values())
            waited[0] = 0.0
            started = time.perf_counter()
            counts = worker.reconcile("kubernetes")
            timings.append(time.perf_counter() - started)
            api.append(waited[0])
            calls.append(sum(cluster.emulator.calls.values()) - before)
            assert counts == {"launched": 0, "running": 0, "finished": 0}, counts
        results[f"{target}_in_flight"] = {
            "api_calls_per_pass": statistics.median(calls),
            "pass_s_median": round(statistics.median(timings), 3),
            "pass_s_max": round(max(timings), 3),
            "of_which_api_server_s": round(statistics.median(api), 3),
        }
    KubernetesExecutor._call = call
    return results


def bench_launch_rate(cluster, user) -> dict:
    from training import services
    from training.models import Job, Run

    request = a_request(user)
    results = {}
    for dispatchers, runs in ((1, 2000), (2, 4000)):
        Run.objects.exclude(status__in=["succeeded", "failed", "cancelled"]).update(status="succeeded")
        Job.objects.exclude(status__in=["succeeded", "failed", "lost", "cancelled"]).update(status="succeeded")
        before_jobs = set(cluster.emulator.created_jobs)
        before_calls = sum(cluster.emulator.calls.values())
        ids = [services.submit(user, request)[0].pk for _ in range(runs)]
        go = VAR / f"go-{dispatchers}"
        script = DISPATCHER.format(root=str(ROOT), go=str(go))
        processes = [
            subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(dispatchers)
        ]
        time.sleep(5)  # Django starts in each; the clock starts at the go signal
        started = time.perf_counter()
        go.touch()
        launched = [int(p.communicate(timeout=1800)[0].strip() or 0) for p in processes]
        elapsed = time.perf_counter() - started
        created = {name: n for name, n in cluster.emulator.created_jobs.items() if name not in before_jobs}
        submitted = Run.objects.filter(pk__in=ids, status="submitted").count()
        results[f"{dispatchers}_dispatcher{'s' if dispatchers > 1 else ''}"] = {
            "runs": runs,
            "launched_per_minute": round(runs / elapsed * 60),
            "seconds": round(elapsed, 1),
            "submitted": submitted,
            "jobs_created": len(created),
            "created_twice": sum(1 for n in created.values() if n > 1),
            "per_dispatcher": launched,
            "api_calls_per_job": round((sum(cluster.emulator.calls.values()) - before_calls) / runs, 2),
        }
    return results


def bench_launch_latency(cluster, user, runs: int) -> dict:
    from django_q.models import OrmQ

    from training import services
    from training.models import Job, Run

    # Leave the idle worker nothing from the benchmarks before: no jobs to observe, no tasks queued.
    Run.objects.exclude(status__in=["succeeded", "failed", "cancelled"]).update(status="succeeded")
    Job.objects.exclude(status__in=["succeeded", "failed", "lost", "cancelled"]).update(status="succeeded")
    OrmQ.objects.all().delete()
    request = a_request(user)
    latencies = launch_latencies(
        lambda: services.submit(user, request)[0], runs, settled=lambda run: run.status != "queued", warm_up=5
    )
    return {
        "runs": runs,
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
    }


if __name__ == "__main__":
    main()
