"""Launch latency for the benchmarks: queued → submitted, with an idle `run_worker` beside."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def launch_latencies(
    submit: Callable[[], Any], runs: int, settled: Callable[[Any], bool], warm_up: float
) -> list[float]:
    """Seconds from queued to submitted of `runs` runs made one after another by `submit`, each
    waited for until `settled`, with a `run_worker` that had `warm_up` seconds to start; sorted."""
    from training.models import RunEvent

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latencies = []
    try:
        time.sleep(warm_up)  # an idle worker, not its start-up
        for _ in range(runs):
            run = submit()
            deadline = time.monotonic() + 600
            while not settled(run) and time.monotonic() < deadline:
                time.sleep(0.02)
                run.refresh_from_db()
            queued = RunEvent.objects.get(run=run, new_status="queued").created_at
            submitted = RunEvent.objects.get(run=run, new_status="submitted").created_at
            latencies.append((submitted - queued).total_seconds())
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
    return sorted(latencies)
