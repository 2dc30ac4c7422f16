"""A run's log, and how far its trainer has got.

- While the run is active the log comes from its executor (a pod's log, the local process's file),
  cached for a moment so that many people watching one run cost one read per interval; after, and
  whenever the live log cannot be read, from the copy kept in the artifact store.
- The trainer's stage and progress are read from the log's stage lines (and, while it trains, from
  the iterations its estimator reports); the time it has left is estimated from earlier runs of
  the same workflow on a similar number of training rows.
"""

from __future__ import annotations

import re
import statistics
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.utils import timezone

from railyard_trainer import vocabulary as v
from railyard_trainer.stages import STAGES, SUBSTAGES
from training import artifacts
from training.executors import ExecutorError, get_executor, job_ref

if TYPE_CHECKING:
    from training.models import Job, Run, RunQuerySet

#: How long one read of a live log serves every viewer of the run.
LIVE_LOG_SECONDS = 2

STAGE_LINE = re.compile(r"stage=(\w+) (started|done)")
#: What estimators print per iteration while they train: "[k/N] …" (gradient boosting), and
#: "Iteration k, loss = …" (a neural network, out of the "train: up to N iterations" the workflow said).
ROUND = re.compile(r"^\[(\d+)/(\d+)\]", re.M)
ITERATION = re.compile(r"^Iteration (\d+), loss", re.M)
PLANNED = re.compile(r"train: up to (\d+) iterations")
TRAIN = STAGES.index("train")


def progress(log: str) -> tuple[str | None, int]:
    """The stage the trainer is in (or last finished) and the percentage done: whole stages, and
    during training the share of its iterations an estimator has reported."""
    stage, done = None, 0.0
    for name, what in STAGE_LINE.findall(log):
        if name in STAGES:
            stage = name
            done = STAGES.index(name) + (what == "done")
        elif name in SUBSTAGES:  # within the stage it belongs to, which has finished
            stage = name
            done = STAGES.index(SUBSTAGES[name]) + 1
    within = _trained_share(log)
    if within is not None and (stage is None or done == TRAIN):  # training (its start may be out of the tail)
        stage, done = "train", TRAIN + within
    return stage, round(100 * done / len(STAGES))


def _trained_share(log: str) -> float | None:
    """The share of its iterations the estimator has reported, from the last such line; None if none."""
    rounds = ROUND.findall(log)
    if rounds:
        k, n = map(int, rounds[-1])
        return min(k / n, 1.0) if n else None
    iterations, planned = ITERATION.findall(log), PLANNED.findall(log)
    if iterations and planned:
        return min(int(iterations[-1]) / int(planned[-1]), 1.0)
    return None


def run_log(run: Run, tail: int) -> str:
    """The live log while the trainer runs; the stored one after, or when the live one cannot be read.

    A segmented request's child shares its job's log with the job's other runs: its own part is the
    copy the trainer keeps in the child's folder as it goes."""
    problem = None
    own_part = run.kind in (v.RunKind.GENERIC, v.RunKind.SEGMENT)
    job = run.current_job() if run.state.is_active and not own_part else None
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


TRAIN_ROWS = re.compile(r"stage=split done .*?train_rows=(\d+)")
#: How many earlier runs an estimate looks at, and how far their training rows may be from this one's.
ESTIMATE_FROM = 50
SIMILAR_ROWS = 2.0


def time_left(run: Run, log: str, earlier: RunQuerySet) -> dict | None:
    """About how many seconds the trainer has left: the median of its own clock over earlier
    succeeded runs (from `earlier`, those the viewer may see) of the same workflow whose training
    rows were within a factor of two of this run's, less the time it has run. None while that is
    not known (before the split, or with no such runs)."""
    found = TRAIN_ROWS.findall(log)
    if not found or run.started_at is None:
        return None
    rows = int(found[-1])
    summaries = (
        earlier.filter(workflow_id=run.workflow_id, status=v.RunStatus.SUCCEEDED)
        .exclude(pk=run.pk)
        .order_by("-id")
        .values_list("data_summary", flat=True)[:ESTIMATE_FROM]
    )
    took = [
        sum(summary["stage_seconds"].values())
        for summary in summaries
        if summary
        and summary.get("stage_seconds")
        and rows / SIMILAR_ROWS <= summary.get("train_rows", -1) <= rows * SIMILAR_ROWS
    ]
    if not took:
        return None
    elapsed = (timezone.now() - run.started_at).total_seconds()
    return {"seconds": max(round(statistics.median(took) - elapsed), 0), "runs": len(took)}
