"""Segments benchmark, run by `make bench` (or alone: `python bench/segments.py [SEGMENTS]`).

One segmented request for SEGMENTS merchants (default 1,000; 700 rows each) against SEGMENTS separate
runs of the same data, one per merchant (`data.filters` merchant = m), through the worker and the
local executor on SQLite: wall time from submit to the last run's end, trainer processes started,
and the peak memory of the largest trainer process. Each side runs in a fresh process of its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = 700


def setup(var: Path) -> None:
    os.environ.update(
        RAILYARD_VAR_DIR=str(var),
        RAILYARD_DATA_ROOTS=str(var / "data"),
        DJANGO_SETTINGS_MODULE="railyard_site.settings",
        LOG_LEVEL="ERROR",
    )
    os.environ.pop("DATABASE_URL", None)
    (var / "static").mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("sync_workflows", verbosity=0)


def measure(side: str, segments: int, var: Path) -> dict:
    """Submit one side's work and drive the worker until every run has ended."""
    setup(var)
    from django.contrib.auth.models import User

    from training import services, worker
    from training.demo import segmented_request, write_segmented
    from training.models import Job, Run

    data = var / "data" / "charges.parquet"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        write_segmented(data, merchants=segments, own=segments // 10, rows=ROWS)
    user = User.objects.create_user(f"bench-{side}")
    request = segmented_request(data, min_rows=300, jobs=4)
    started = time.perf_counter()
    if side == "packed":
        runs = [services.submit(user, request)[0]]
    else:
        del request["train"]["segment_by"]
        runs = []
        for i in range(segments):
            request["data"]["filters"] = [{"feature_name": "merchant", "predicate": "Eq", "feature_value": f"m{i:02d}"}]
            runs.append(services.submit(user, request)[0])
    ids = [run.pk for run in runs]
    while Run.objects.filter(pk__in=ids, status__in=["queued", "submitted", "running"]).exists():
        worker.reconcile()
        time.sleep(0.2)
    wall = time.perf_counter() - started
    trained = Run.objects.filter(status="succeeded").exclude(kind="segmented").count()
    failed = Run.objects.filter(status="failed").count()
    return {
        "side": side,
        "segments": segments,
        "wall_s": round(wall, 1),
        "models_trained": trained,
        "failed_runs": failed,
        "trainer_processes": Job.objects.count(),
        "peak_trainer_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def main() -> None:
    if len(sys.argv) == 4:  # one side, in a fresh process
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
        return
    segments = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    results = {}
    for side in ("packed", "separate"):
        var = Path(tempfile.mkdtemp(prefix=f"railyard-bench-segments-{side}-"))
        out = subprocess.run(
            [sys.executable, __file__, side, str(segments), str(var)], capture_output=True, text=True, check=True
        )
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(results[side]), flush=True)
    ratio = results["separate"]["wall_s"] / results["packed"]["wall_s"]
    print(json.dumps({"separate_over_packed_wall": round(ratio, 1), "goal": "at least 5"}))


if __name__ == "__main__":
    main()
