"""Statuses of runs and jobs and the moves between them: the one place that changes either.

- A job is one execution on an executor; a run's attempts are its jobs. A run's status follows
  from its job's: launching the job submits its runs, the job running runs them, and finishing a
  job first finishes each of its runs (from their artifacts), then ends the job.
- Every move is a conditional update (`WHERE status = <expected>`) whose row count is checked, so
  two workers can never both win, and each writes an event row.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from railyard_trainer.vocabulary import JOB_TERMINAL, Cause, JobStatus, RunStatus
from training import webhooks
from training.models import Job, JobEvent, JobRun, Run, RunEvent
from training.retraining import champions

#: The transitions the system makes on its own. Leaving a terminal state takes an operator.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.SUBMITTED, RunStatus.FAILED, RunStatus.CANCELLED}),
    # Back to the queue from flight: a smart retry, as a new attempt (see `retry`).
    RunStatus.SUBMITTED: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
_JOB_ENDS = JOB_TERMINAL
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.LAUNCHED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.LAUNCHED: frozenset({JobStatus.RUNNING, *_JOB_ENDS}),
    JobStatus.RUNNING: _JOB_ENDS,
    **{end: frozenset() for end in _JOB_ENDS},
}

WORKER = "worker"
#: The ends of a run that project webhooks are told of.
NOTIFIED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})

#: The timestamp each status stamps when a run enters it.
STAMPS = {
    RunStatus.SUBMITTED: "submitted_at",
    RunStatus.RUNNING: "started_at",
    RunStatus.SUCCEEDED: "finished_at",
    RunStatus.FAILED: "finished_at",
    RunStatus.CANCELLED: "finished_at",
}
JOB_STAMPS = {
    JobStatus.LAUNCHED: "launched_at",
    JobStatus.RUNNING: "started_at",
    **dict.fromkeys(_JOB_ENDS, "finished_at"),
}


class TransitionNotAllowed(Exception):
    pass


def can_transition(old: str, new: str) -> bool:
    return RunStatus(new) in TRANSITIONS[RunStatus(old)]


def transition(
    run: Run,
    new: RunStatus,
    *,
    reason: str = "",
    actor: str = WORKER,
    operator: bool = False,
    **fields: Any,
) -> bool:
    """Move `run` from the status it was read with to `new`; False if another writer got there first.

    - `operator=True` allows any move (an admin fixing a run's state); it is still conditional.
    - `fields` are written in the same update (metrics, failure reason).
    """

    old = RunStatus(run.status)
    if not operator and new not in TRANSITIONS[old]:
        raise TransitionNotAllowed(f"run {run.pk}: {old} → {new} is not allowed")
    if new not in NOTIFIED:
        return _write(run, RunEvent.objects.create, "run_id", old, new, _run_updates(new, fields), reason, actor)
    # What follows from a run's end is written with the move, or not at all: a model's champion (a
    # successful retrain may replace it) and the deliveries of the project's webhooks.
    with transaction.atomic(savepoint=False):
        moved = _write(run, RunEvent.objects.create, "run_id", old, new, _run_updates(new, fields), reason, actor)
        if moved and new == RunStatus.SUCCEEDED and run.model_id:
            champions.challenger_succeeded(run)
        if moved:
            webhooks.run_ended(run)
    return moved


def _run_updates(new: RunStatus, fields: dict[str, Any]) -> dict[str, Any]:
    now = timezone.now()
    updates = {"status": new, "updated_at": now, "status_message": "", **fields}
    if new in STAMPS:
        updates[STAMPS[new]] = now
    if new == RunStatus.QUEUED:
        updates.update(submitted_at=None, started_at=None, finished_at=None)
    return updates


def move_job(job: Job, new: JobStatus, *, reason: str = "", actor: str = WORKER, **fields: Any) -> bool:
    """Move `job` from the status it was read with to `new`; False if another writer got there first."""

    old = JobStatus(job.status)
    if new not in JOB_TRANSITIONS[old]:
        raise TransitionNotAllowed(f"job {job.pk}: {old} → {new} is not allowed")
    return _write(job, JobEvent.objects.create, "job_id", old, new, _job_updates(new, fields), reason, actor)


def _job_updates(new: JobStatus, fields: dict[str, Any]) -> dict[str, Any]:
    now = timezone.now()
    return {"status": new, "updated_at": now, JOB_STAMPS[new]: now, **fields}


def _write(
    record: Run | Job,
    write_event: Any,
    key: str,
    old: str,
    new: str,
    updates: dict[str, Any],
    reason: str,
    actor: str,
) -> bool:
    """The conditional update and its event, together or not at all; the record follows on success."""
    # No savepoint: the update either matches or writes nothing, and an error aborts the caller's
    # whole transaction anyway.
    with transaction.atomic(savepoint=False):
        if not type(record).objects.filter(pk=record.pk, status=old).update(**updates):
            return False
        write_event(**{key: record.pk}, old_status=old, new_status=new, reason=reason, actor=actor)
    for name, value in updates.items():
        setattr(record, name, value)
    return True


def carried(job: Job) -> list[Run]:
    """The runs a job carries that are still on its attempt (a requeued run has moved on)."""
    return carried_by([job]).get(job.pk, [])


#: What following a job needs of its runs; the rest (the kilobytes of request and spec JSON, metrics)
#: is read only when a run is finished.
OBSERVED_RUN_FIELDS = (
    "id",
    "status",
    "attempt",
    "executor",
    "compute_resource",
    "artifact_uri",
    "status_message",
    "kind",
    "parent_id",
)


def carried_by(jobs: list[Job]) -> dict[int, list[Run]]:
    """The runs each job carries that are still on its attempt, by job id, in one query."""

    runs = (
        Run.objects.filter(memberships__job__in=jobs, memberships__attempt=models.F("attempt"))
        .annotate(carrier=models.F("memberships__job_id"))
        .only(*OBSERVED_RUN_FIELDS)
        .order_by("pk")
    )
    by_job: dict[int, list[Run]] = {}
    for run in runs:
        by_job.setdefault(run.carrier, []).append(run)
    return by_job


# -- a job's life, and its runs' with it --------------------------------------------------------


def open_job(run: Run) -> Job:
    """The job of the run's current attempt, made (pending) the first time; one per attempt, by constraint."""
    return open_jobs([run])[run.pk]


def open_jobs(runs: list[Run]) -> dict[int, Job]:
    """The job of each run's current attempt, by run id, made (pending) where there is none yet, in
    a few queries for the lot. A dispatcher racing to make the same one loses on the constraint and
    takes the winner's."""

    memberships = JobRun.objects.filter(run__in=runs, attempt=models.F("run__attempt")).select_related("job")
    jobs = {membership.run_id: membership.job for membership in memberships}
    missing = [run for run in runs if run.pk not in jobs]
    if not missing:
        return jobs
    try:
        with transaction.atomic():
            made = Job.objects.bulk_create(
                [Job(executor=r.executor, attempt=r.attempt, compute_resource=r.compute_resource) for r in missing]
            )
            JobRun.objects.bulk_create(
                [JobRun(job=job, run=run, attempt=run.attempt) for job, run in zip(made, missing, strict=True)]
            )
            JobEvent.objects.bulk_create(
                [
                    JobEvent(
                        job=job,
                        new_status=JobStatus.PENDING,
                        reason=f"run {run.pk}, attempt {run.attempt}",
                        actor=WORKER,
                    )
                    for job, run in zip(made, missing, strict=True)
                ]
            )
        jobs.update({run.pk: job for job, run in zip(made, missing, strict=True)})
    except IntegrityError:  # another dispatcher made some of them first: take theirs, make the rest
        for run in missing:
            jobs[run.pk] = _open_one(run)
    return jobs


def pack(runs: list[Run], reason: str) -> Job:
    """One pending job carrying several queued runs' current attempts (a segmented request's runs)."""
    first = runs[0]
    job = Job.objects.create(executor=first.executor, attempt=first.attempt, compute_resource=first.compute_resource)
    JobRun.objects.bulk_create([JobRun(job=job, run=run, attempt=run.attempt) for run in runs])
    JobEvent.objects.create(job=job, new_status=JobStatus.PENDING, reason=reason, actor=WORKER)
    return job


def _open_one(run: Run) -> Job:

    try:
        with transaction.atomic():
            job = Job.objects.create(executor=run.executor, attempt=run.attempt, compute_resource=run.compute_resource)
            JobRun.objects.create(job=job, run=run, attempt=run.attempt)
            JobEvent.objects.create(
                job=job, new_status=JobStatus.PENDING, reason=f"run {run.pk}, attempt {run.attempt}", actor=WORKER
            )
        return job
    except IntegrityError:
        return Job.objects.get(memberships__run=run, memberships__attempt=run.attempt)


def job_launched(job: Job, handle: dict) -> list[Run] | None:
    """The executor accepted the job: its queued runs are submitted. Returns the runs the job carries
    as they are now, or None if the job had moved on (another launcher recorded it first)."""
    return jobs_launched([(job, handle)]).get(job.pk)


def jobs_launched(launches: list[tuple[Job, dict]]) -> dict[int, list[Run]]:
    """`job_launched` for many jobs at once, in one transaction of a few statements (a dispatcher
    records a batch of launches together). Returns the runs of each job it recorded, by job id;
    a job another launcher recorded first is left out."""
    if not launches:
        return {}
    handles = {job.pk: handle for job, handle in launches}
    with transaction.atomic():
        # Locked, still pending: the same guard as a conditional update, for the whole batch.
        pending = set(
            Job.objects.select_for_update()
            .filter(pk__in=handles, status=JobStatus.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        jobs = [job for job, _ in launches if job.pk in pending]
        # Launched, a job is free for any worker to observe (see `leases.claim_in_flight`).
        updates = _job_updates(JobStatus.LAUNCHED, {"lease_holder": ""})
        for job in jobs:
            for name, value in {**updates, "handle": handles[job.pk]}.items():
                setattr(job, name, value)
        Job.objects.bulk_update(jobs, [*updates, "handle"])
        JobEvent.objects.bulk_create(
            JobEvent(
                job_id=job.pk,
                old_status=JobStatus.PENDING,
                new_status=JobStatus.LAUNCHED,
                reason="launched",
                actor=WORKER,
            )
            for job in jobs
        )
        runs = carried_by(jobs)
        _submit([(job_id, run) for job_id, carried in runs.items() for run in carried])
    return {job.pk: runs.get(job.pk, []) for job in jobs}


def _submit(runs: list[tuple[int, Run]]) -> None:
    """Move the queued ones of (job id, run) to submitted, with their events, in three statements."""
    queued = {run.pk: (job_id, run) for job_id, run in runs if run.status == RunStatus.QUEUED}
    locked = set(
        Run.objects.select_for_update()
        .filter(pk__in=queued, status=RunStatus.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    updates = _run_updates(RunStatus.SUBMITTED, {})
    Run.objects.filter(pk__in=locked).update(**updates)
    events = []
    for pk in sorted(locked):
        job_id, run = queued[pk]
        for name, value in updates.items():
            setattr(run, name, value)
        events.append(
            RunEvent(
                run_id=pk,
                old_status=RunStatus.QUEUED,
                new_status=RunStatus.SUBMITTED,
                reason=f"launched as job {job_id}",
                actor=WORKER,
            )
        )
    RunEvent.objects.bulk_create(events)


def job_running(job: Job, runs: list[Run] | None = None) -> bool:
    """The trainer started: the job and its submitted runs (`runs`, when read already) are running."""
    runs = carried(job) if runs is None else runs
    if job.status == JobStatus.RUNNING and all(run.status != RunStatus.SUBMITTED for run in runs):
        return False  # nothing new: the common case of a pass over many running jobs
    with transaction.atomic():
        if job.status == JobStatus.LAUNCHED and not move_job(job, JobStatus.RUNNING, reason="trainer started"):
            return False
        changed = False
        for run in runs:
            if run.status == RunStatus.SUBMITTED:
                changed |= transition(run, RunStatus.RUNNING, reason="trainer started")
    return changed


def end_job(job: Job, new: JobStatus, cause: str = "", message: str = "", actor: str = WORKER) -> bool:
    """End a job, once each of its runs has been finished (so that a worker dying in between leaves
    the job in flight, and the next pass finishes it again)."""
    return move_job(job, new, reason=message or new.value, actor=actor, cause=cause, message=message[:10000])


def job_refused(job: Job, message: str) -> bool:
    """The executor would not start the job: it and its runs fail with the executor's words."""
    with transaction.atomic():
        for run in carried(job):
            if run.state.is_active:
                mark_failed(run, message)
        return end_job(job, JobStatus.FAILED, Cause.REFUSED, message)


# -- a run's own moves ---------------------------------------------------------------------------


def mark_succeeded(
    run: Run, metrics: dict, data_summary: dict, reason: str = "trainer finished", **fields: Any
) -> bool:
    return transition(run, RunStatus.SUCCEEDED, metrics=metrics, data_summary=data_summary, reason=reason, **fields)


def mark_failed(run: Run, reason: str, actor: str = WORKER, operator: bool = False) -> bool:
    return transition(run, RunStatus.FAILED, reason=reason, actor=actor, operator=operator, failure_reason=reason)


def cancel(run: Run, actor: str, reason: str = "cancelled") -> bool:
    return transition(run, RunStatus.CANCELLED, reason=reason, actor=actor)


def reopen(run: Run, actor: str, reason: str) -> bool:
    """A segmented request that failed runs again while its failed children retrain (`failed_only`)."""
    return transition(
        run, RunStatus.RUNNING, reason=reason, actor=actor, operator=True, failure_reason="", finished_at=None
    )


def retrain(run: Run, actor: str, reason: str) -> bool:
    """A failed child of a segmented request back to the queue as a new attempt (`failed_only`)."""
    return _next_attempt(run, reason, actor=actor, operator=True)


def requeue(run: Run, actor: str, reason: str = "requeued by an operator") -> bool:
    """An operator's action: send a run back to the queue for another attempt, in a folder of its own."""
    return _next_attempt(run, reason, actor=actor, operator=True)


def retry(run: Run, compute_resource: str, reason: str) -> bool:
    """The system's smart retry: the run goes back to the queue as a new attempt on another profile."""
    return _next_attempt(run, reason, compute_resource=compute_resource)


def _next_attempt(run: Run, reason: str, actor: str = WORKER, operator: bool = False, **fields: Any) -> bool:
    from training.conf import railyard

    attempt = run.attempt + 1
    return transition(
        run,
        RunStatus.QUEUED,
        reason=reason,
        actor=actor,
        operator=operator,
        attempt=attempt,
        artifact_uri=railyard.run_artifact_uri(run.pk, attempt),
        failure_reason="",
        metrics={},
        data_summary={},
        **fields,
    )
