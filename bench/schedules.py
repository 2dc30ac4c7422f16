"""The scheduler with 5,000 models on daily schedules, on PostgreSQL; run by `make bench` (or alone).

- idle tick: one scheduler pass when nothing is due (what every worker pays every few seconds)
- firing tick: the pass at 03:00 when all 5,000 schedules are due, each fire going through the
  API's submit path (the model's template resolved, the request validated, the run queued); as
  fires per minute
- two replicas: the same with two scheduler processes ticking at once (each time fires once)

A throwaway database on the PostgreSQL server of BENCH_POSTGRES, `VACUUM ANALYZE`d before timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from throwaway import database_url, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
DATABASE = f"railyard_bench_schedules_{os.getpid()}"
VAR = Path(tempfile.mkdtemp(prefix="railyard-bench-schedules-"))
os.environ.update(
    RAILYARD_VAR_DIR=str(VAR),
    RAILYARD_DATA_DIR=str(VAR / "data"),
    DATABASE_URL=database_url(DATABASE),
    DJANGO_SETTINGS_MODULE="railyard_site.settings",
    LOG_LEVEL="ERROR",
)
(VAR / "static").mkdir(exist_ok=True)
sys.path.insert(0, str(ROOT))

MODELS = int(os.environ.get("BENCH_MODELS", "5000"))
DUBLIN = ZoneInfo("Europe/Dublin")
CREATED = datetime(2026, 11, 1, 12, tzinfo=DUBLIN)
#: A scheduler process for the replicas' race: waits for the go file, ticks at the given time.
REPLICA = """
import json, sys, time, django
from datetime import datetime
from pathlib import Path
sys.path.insert(0, {root!r})
django.setup()
from training.retraining import scheduler
go = Path({go!r})
while not go.exists():
    time.sleep(0.01)
started = time.perf_counter()
counts = scheduler.tick(datetime.fromisoformat({moment!r}))
print(json.dumps({{**counts, "seconds": time.perf_counter() - started}}))
"""


def setup():
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from training import demo

    call_command("migrate", verbosity=0)
    call_command("sync_workflows", verbosity=0)
    paths = demo.write_dataset(VAR / "data", n_rows=2000, seed=1)
    request = demo.demo_request(paths["charges"], paths["merchants"])
    request.pop("project")  # each model's own
    request["data"]["date_range"] = {"start": "today-12m", "end": "today"}
    request["data"]["holdout_sampling"]["date_range"] = {"start": "today-1m", "end": "today"}
    return User.objects.create_user("bench"), request


def add_models(user, request: dict, count: int) -> float:
    from training.retraining import services

    started = time.perf_counter()
    for n in range(count):
        model = services.create_model(user, {"name": f"merchant-{n}", "project": f"team-{n % 20}", "request": request})
        services.add_schedule(model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin"}, now=CREATED)
    return time.perf_counter() - started


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def idle_ticks(moment: datetime, repeats: int = 30) -> dict:
    from training.retraining import scheduler

    timings = []
    for n in range(repeats):
        started = time.perf_counter()
        counts = scheduler.tick(moment + timedelta(seconds=n))
        timings.append((time.perf_counter() - started) * 1000)
        assert counts["started"] == 0, counts
    timings.sort()
    return {"p50_ms": round(statistics.median(timings), 2), "p95_ms": round(timings[int(0.95 * (repeats - 1))], 2)}


def firing_tick(moment: datetime) -> dict:
    from training.models import Run
    from training.retraining import scheduler

    started = time.perf_counter()
    counts = scheduler.tick(moment)
    seconds = time.perf_counter() - started
    assert counts["started"] == MODELS, counts
    assert Run.objects.filter(scheduled_time=moment.replace(second=0)).count() == MODELS
    return {"fires": counts["started"], "seconds": round(seconds, 2), "fires_per_minute": round(MODELS / seconds * 60)}


def replicas(moment: datetime) -> dict:
    from training.models import Fire

    go = VAR / "go"
    script = REPLICA.format(root=str(ROOT), go=str(go), moment=moment.isoformat())
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ)
        for _ in range(2)
    ]
    time.sleep(3)  # both started and waiting
    started = time.perf_counter()
    go.touch()
    answers = [json.loads(process.communicate(timeout=1800)[0].strip().splitlines()[-1]) for process in processes]
    seconds = time.perf_counter() - started
    fired = sum(answer["started"] for answer in answers)
    assert fired == MODELS, answers
    assert Fire.objects.filter(scheduled_time=moment.replace(second=0)).count() == MODELS
    return {
        "fires": fired,
        "per_replica": [answer["started"] for answer in answers],
        "seconds": round(seconds, 2),
        "fires_per_minute": round(MODELS / seconds * 60),
    }


def main() -> None:
    with throwaway_database(DATABASE):
        user, request = setup()
        seconds = add_models(user, request, MODELS)
        print(f"defined {MODELS} models with daily 03:00 Europe/Dublin schedules in {seconds:.1f} s")
        analyze()
        print("idle tick:", json.dumps(idle_ticks(datetime(2026, 11, 2, 2, 0, tzinfo=DUBLIN))))
        print("firing tick:", json.dumps(firing_tick(datetime(2026, 11, 2, 3, 0, 30, tzinfo=DUBLIN))))
        analyze()
        print("idle tick after:", json.dumps(idle_ticks(datetime(2026, 11, 2, 4, 0, tzinfo=DUBLIN))))
        from training.models import Run

        Run.objects.update(status="succeeded")  # yesterday's retrains ended (concurrency: forbid)
        print("two replicas:", json.dumps(replicas(datetime(2026, 11, 3, 3, 0, 30, tzinfo=DUBLIN))))


if __name__ == "__main__":
    main()
