"""Railyard's benchmarks: `make bench`. Results go to stdout; record them in docs/PERFORMANCE.md.

- trainer: the demo request on 1M synthetic charges (wall time, peak memory of the trainer process)
- launch latency: queued → submitted with an idle `run_worker` (cluster + reconcile loop)
- API and dashboard: submitting runs; the run list (API, and the dashboard's first, oldest and
  searched pages) with 100k runs in the table
Everything runs against a throwaway SQLite database and artifact store under a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(tempfile.mkdtemp(prefix="railyard-bench-"))
# Datasets go under the data directory, the default (and only) data root; trainers are told so too.
os.environ.update(
    RAILYARD_VAR_DIR=str(VAR),
    RAILYARD_DATA_ROOTS=str(VAR / "data"),
    DJANGO_SETTINGS_MODULE="railyard_site.settings",
    LOG_LEVEL="WARNING",
)
(VAR / "static").mkdir()
os.environ.pop("DATABASE_URL", None)
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from latency import launch_latencies  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from training import demo, services  # noqa: E402
from training.models import Run  # noqa: E402


def bench_trainer(rows: int) -> dict:
    paths = demo.write_dataset(VAR / "data" / "bench-data", n_rows=rows)
    spec = {**demo.demo_request(paths["charges"], paths["merchants"]), "run_id": "bench"}
    spec_file = VAR / "spec.json"
    spec_file.write_text(json.dumps(spec))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "railyard_trainer", "train", "--spec", str(spec_file), "--out", f"file://{VAR}/out"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    stages = {
        line.split("stage=")[1].split()[0]: float(line.split("duration=")[1].split("s")[0])
        for line in result.stdout.splitlines()
        if " done duration=" in line
    }
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rows": rows, "wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb), "stages_s": stages}


def bench_launch_latency(user: User, runs: int) -> dict:
    paths = demo.write_dataset(VAR / "data" / "latency-data", n_rows=5000)
    request = demo.demo_request(paths["charges"], paths["merchants"])
    request["train"]["custom_params"] = {"max_iter": 10}
    # Each run trains to its end before the next is made: the local executor's capacity stays free.
    latencies = launch_latencies(
        lambda: services.submit(user, request)[0], runs, settled=lambda run: run.state.is_terminal, warm_up=3
    )
    return {"runs": runs, "median_s": round(statistics.median(latencies), 3), "max_s": round(max(latencies), 3)}


def bench_api(user: User, submissions: int, table_rows: int) -> dict:
    client = APIClient(HTTP_HOST="127.0.0.1")
    client.force_authenticate(user)
    paths = demo.write_dataset(VAR / "data" / "api-data", n_rows=1000)
    body = json.dumps(demo.demo_request(paths["charges"], paths["merchants"]))
    started = time.perf_counter()
    for _ in range(submissions):
        assert client.post("/api/v1/runs", data=body, content_type="application/json").status_code == 201
    submit_ms = (time.perf_counter() - started) / submissions * 1000
    template = Run.objects.first()
    Run.objects.bulk_create(
        [
            Run(
                owner=user,
                user=template.user,
                project=template.project,
                workflow=template.workflow,
                compute_resource="cpu",
                request={},
                executor="local",
                artifact_uri="",
            )
            for _ in range(table_rows)
        ],
        batch_size=5000,
    )
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        assert client.get("/api/v1/runs").status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
    pages = {}
    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(user)
    oldest_page = f"/?before_id={Run.objects.order_by('id').values_list('id', flat=True)[30]}"
    for name, path in (
        ("dashboard_first_page", "/"),
        ("dashboard_oldest_page", oldest_page),
        ("dashboard_search", "/?q=nothing-matches"),
    ):
        page_timings = []
        for _ in range(10):
            started = time.perf_counter()
            assert browser.get(path).status_code == 200
            page_timings.append((time.perf_counter() - started) * 1000)
        pages[f"{name}_ms_median"] = round(statistics.median(page_timings), 1)
    return {
        "submit_ms_per_run": round(submit_ms, 1),
        "runs_in_table": Run.objects.count(),
        "list_first_page_ms_median": round(statistics.median(timings), 1),
        **pages,
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    call_command("sync_workflows", verbosity=0)
    user = User.objects.create_user("bench")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print("trainer:", json.dumps(bench_trainer(int(os.environ.get("BENCH_ROWS", 1_000_000)))))
    print("launch latency:", json.dumps(bench_launch_latency(user, runs=5)))
    print("api:", json.dumps(bench_api(user, submissions=200, table_rows=100_000)))


if __name__ == "__main__":
    main()
