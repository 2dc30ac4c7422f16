"""A run's log, and how far its trainer has got.

- While the run is active the log comes from its executor (a pod's log, the local process's file),
  cached for a moment so that many people watching one run cost one read per interval; after, and
  whenever the live log cannot be read, from the copy kept in the artifact store.
- The trainer's stage and progress are read from the log's stage lines.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.cache import cache

from railyard_trainer import vocabulary as v
from railyard_trainer.stages import STAGES
from training import artifacts
from training.executors import ExecutorError, get_executor, job_ref

if TYPE_CHECKING:
    from training.models import Job, Run

#: How long one read of a live log serves every viewer of the run.
LIVE_LOG_SECONDS = 2

STAGE_LINE = re.compile(r"stage=(\w+) (started|done)")


def progress(log: str) -> tuple[str | None, int]:
    """The stage the trainer is in (or last finished) and the percentage of stages done."""
    stage, done = None, 0
    for name, what in STAGE_LINE.findall(log):
        if name in STAGES:
            stage = name
            done = STAGES.index(name) + (what == "done")
    return stage, round(100 * done / len(STAGES))


def run_log(run: Run, tail: int) -> str:
    """The live log while the trainer runs; the stored one after, or when the live one cannot be read."""
    problem = None
    job = run.current_job() if run.state.is_active else None
    if job is not None and job.handle:
        try:
            if live := _live_log(job, tail):
                return live
        except ExecutorError as exc:
            problem = exc
    stored = artifacts.read_text(run, v.LOG)
    if stored is not None:
        return "".join(stored.splitlines(keepends=True)[-tail:])
    return f"(the live log cannot be read right now: {problem})" if problem else ""


def _live_log(job: Job, tail: int) -> str:
    key = f"railyard:live-log:job-{job.pk}:{tail}"
    text = cache.get(key)
    if text is None:
        text = get_executor(job.executor).logs(job_ref(job), tail)
        cache.set(key, text, LIVE_LOG_SECONDS)
    return text
