"""The run list at 10,000 and 100,000 runs on PostgreSQL, run by `make bench` (or alone).

`GET /api/v1/runs` through the API as a client calls it (authentication, query, serialization),
for the kinds of query people make: the first page, a filtered page (status and project), a deep
page (the 1,000th page of 50 by `page` — at 10,000 runs the one before the last — and the same
rows by `cursor`), the last page, and a description search. Each run row carries a request and
spec of about 3.6 KB, as real runs do. The database is a throwaway one on the PostgreSQL server of
BENCH_POSTGRES, `VACUUM ANALYZE`d before timing.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from throwaway import database_url, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
DATABASE = f"railyard_bench_list_{os.getpid()}"
VAR = Path(tempfile.mkdtemp(prefix="railyard-bench-list-"))
os.environ.update(
    RAILYARD_VAR_DIR=str(VAR),
    DATABASE_URL=database_url(DATABASE),
    DJANGO_SETTINGS_MODULE="railyard_site.settings",
    LOG_LEVEL="ERROR",
)
(VAR / "static").mkdir(exist_ok=True)
sys.path.insert(0, str(ROOT))

PROJECTS = 20
WORKFLOWS = ("gradient_boosting", "logistic_regression", "random_forest", "neural_network")
STATUSES = ("succeeded",) * 6 + ("failed", "cancelled", "running", "queued")
REPEATS = 30


def fill(user, count: int, start: int) -> None:
    """`count` more runs, spread over projects, workflows, users and statuses, with real-sized JSON."""
    from training import demo
    from training.models import Project, Run, Workflow

    request = demo.demo_request(Path("/data/charges.parquet"), Path("/data/merchants.parquet"))
    request["train"]["custom_params"] = {f"param_{i}": i * 0.5 for i in range(60)}  # about 3.6 KB with the spec
    projects = [Project.objects.get_or_create(name=f"team-{i}")[0] for i in range(PROJECTS)]
    workflows = [Workflow.objects.get(name=name) for name in WORKFLOWS]
    batch = []
    for n in range(start, start + count):
        batch.append(
            Run(
                owner=user,
                user=f"user-{n % 97}",
                project=projects[n % PROJECTS],
                workflow=workflows[n % len(WORKFLOWS)],
                model_description=f"{['churn', 'fraud', 'ltv', 'ranking'][n % 4]} model {n} for segment {n % 311}",
                compute_resource="cpu",
                request=request,
                spec={**request, "run_id": str(n)},
                executor="local",
                status=STATUSES[n % len(STATUSES)],
                artifact_uri=f"file:///var/artifacts/runs/{n}/attempt-1",
            )
        )
        if len(batch) == 5000:
            Run.objects.bulk_create(batch)
            batch = []
    Run.objects.bulk_create(batch)


def timed(client, path: str) -> dict:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
    timings.sort()
    return {"p50_ms": round(statistics.median(timings), 1), "p95_ms": round(timings[int(0.95 * (REPEATS - 1))], 1)}


def measure(client) -> dict:
    from training.models import Run

    first = client.get("/api/v1/runs?page_size=50").json()
    assert len(first["results"]) == 50
    last_page = (Run.objects.count() + 49) // 50
    deep = min(1000, last_page - 1)  # the 1,000th page of 50, or the one before the last when fewer
    deep_id = Run.objects.order_by("-id").values_list("id", flat=True)[(deep - 1) * 50 - 1]
    return {
        "first_page": timed(client, "/api/v1/runs"),
        "filtered": timed(client, "/api/v1/runs?status=succeeded&project=team-2"),
        f"deep_page_{deep}_by_page": timed(client, f"/api/v1/runs?page={deep}"),
        f"deep_page_{deep}_by_cursor": timed(client, f"/api/v1/runs?cursor={deep_id}"),
        f"last_page_{last_page}_by_page": timed(client, f"/api/v1/runs?page={last_page}"),
        "search": timed(client, "/api/v1/runs?q=segment%20123"),
    }


def main() -> None:
    with throwaway_database(DATABASE):
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.db import connection
        from rest_framework.test import APIClient

        call_command("migrate", verbosity=0)
        call_command("sync_workflows", verbosity=0)
        user = User.objects.create_user("bench")
        client = APIClient(HTTP_HOST="127.0.0.1")
        client.force_authenticate(user)
        results, total = {}, 0
        for target in (10_000, 100_000):
            fill(user, target - total, total)
            total = target
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            results[f"{target}_runs"] = measure(client)
        print("run list:", json.dumps(results))


if __name__ == "__main__":
    main()
