"""The worker's loop: launch queued runs as jobs, observe in-flight jobs, finish their runs from
their artifacts.

Slow I/O (processes, storage, the cluster API) happens outside transactions; every status change
of a run or a job goes through `training.states`.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from railyard_trainer import vocabulary as v
from railyard_trainer.storage import ArtifactNotFound, StoreError, open_store
from railyard_trainer.vocabulary import JOB_ACTIVE, Cause, JobStatus, RunKind, RunStatus
from training import artifacts, images, leases, metrics, provenance, states
from training.conf import railyard
from training.executors import (
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobInputs,
    JobPhase,
    Outcome,
    get_executor,
    job_ref,
)
from training.executors.base import trainer_environment
from training.models import Job, Run
from training.segments import services as segments
from training.teams import data

log = logging.getLogger(__name__)

#: How the trainer's error.json kinds read in a run's failure reason.
ERROR_KINDS = {
    "bad_data": "bad data",
    "crash": "trainer crashed",
    "storage": "the artifact store failed",
    "oom": "out of memory",
}


#: Queued runs claimed at a time; each batch is one short transaction, its launches happen after it.
DISPATCH_BATCH = 50
#: In-flight jobs one worker observes at most in a pass.
MOST_OBSERVED = 20_000
#: Launches in one reconcile pass at most, so that a long queue never keeps a pass from observing.
MOST_LAUNCHED_PER_PASS = 500


def dispatch(executor_name: str | None = None, most: int | None = None) -> int:
    """Launch queued runs, oldest first, as far as the executor's capacity allows; returns how many.

    Any number of dispatchers may run at once (reconcile loops and django-q tasks on every worker
    replica): each claims a batch of queued runs with their attempts' jobs (`leases.claim_queued`)
    and launches them. An executor with a capacity limit dispatches under the `dispatch:<executor>`
    lease instead, one dispatcher at a time, so that counting what is in flight and claiming agree.
    Launching a job twice adopts it, so a dispatcher that dies half way leaves nothing the next
    cannot finish once its claim expires. `most` caps the launches of this call.
    """
    executor = get_executor(executor_name or railyard.executor)
    capacity = executor.capacity()
    if capacity is None:
        return _dispatch(executor, room=most)
    with leases.held(f"dispatch:{executor.name}") as lease:
        if lease is None:
            return 0
        in_flight = Job.objects.filter(executor=executor.name).in_flight().count()
        room = max(capacity - in_flight, 0)
        return _dispatch(executor, room=room if most is None else min(room, most), lease=lease)


def _dispatch(executor: Executor, room: int | None, lease: leases.Renewal | None = None) -> int:
    holder = leases.new_holder()
    with leases.kept(holder):  # a batch started but not yet recorded stays this dispatcher's
        return _dispatch_held(executor, room, holder, lease)


def _dispatch_held(executor: Executor, room: int | None, holder: str, lease: leases.Renewal | None) -> int:
    launched = 0
    try:
        while room is None or room > 0:
            batch = leases.claim_queued(executor.name, holder, min(room or DISPATCH_BATCH, DISPATCH_BATCH))
            if not batch:
                break
            started: list[tuple[Job, dict]] = []
            try:
                go_on = _start_batch(executor, batch, holder, lease, started)
            finally:
                launched += record_launches(started)  # what started is recorded, whatever stopped the pass
            if not go_on:
                break
            if room is not None:
                room -= len(batch)
    finally:
        leases.release_jobs(holder)  # what it claimed and did not launch is free again at once
    return launched


def _start_batch(
    executor: Executor,
    batch: list[tuple[Job, Run]],
    holder: str,
    lease: leases.Renewal | None,
    started: list[tuple[Job, dict]],
) -> bool:
    """Start each claimed job, adding (job, handle) to `started`; False when dispatching must stop."""
    claimed = time.monotonic()
    seen: set[int] = set()
    for job, run in batch:
        if job.pk in seen:
            continue  # a packed job carries several of the claimed runs: it starts once
        seen.add(job.pk)
        if lease is not None and not lease.renew():
            log.warning("dispatching for %s stopped: the lease passed to another worker", executor.name)
            return False
        stale = time.monotonic() - claimed > railyard.lease_ttl.total_seconds() / 2
        if stale and not leases.take_job(job, holder):
            continue  # held too long: another dispatcher took it over
        try:
            handle = start(job, run)
        except ExecutorUnavailable as exc:
            # The backend is down: the other queued runs would only wait out the same retries.
            log.warning("launching run %s postponed: %s", run.pk, exc)
            note(run, f"waiting: {exc}")
            return False
        if handle is not None:
            started.append((job, handle))
    return True


def note(run: Run, message: str) -> None:
    """Say on the run what it waits for; a status change in between wins (and clears it)."""
    Run.objects.filter(pk=run.pk, status=run.status).update(status_message=message[:1000])


def job_inputs(job: Job, run: Run, executor: Executor) -> JobInputs:
    """What the executor needs to start the job, as plain values."""
    profile = railyard.compute_resources[job.compute_resource]
    access = data.of(run.project)
    roots = [str(root) for root in access.roots]
    spec, artifact_uri, run_ids = run.spec, run.artifact_uri, (run.pk,)
    if segments.is_packed(run):
        runs = list(Run.objects.filter(memberships__job=job, memberships__attempt=F("attempt")).order_by("pk"))
        spec, artifact_uri = segments.job_spec(job, runs)
        run, run_ids = runs[0], tuple(r.pk for r in runs)
    return JobInputs(
        job_id=job.pk,
        attempt=job.attempt,
        run_id=run.pk,
        spec=spec,
        artifact_uri=artifact_uri,
        project=run.project.name,
        workflow=run.workflow.name if run.workflow_id else v.COMPOSITION_WORKFLOW,
        compute_resource=job.compute_resource,
        profile=profile,
        image=images.reference(run.workflow.image if run.workflow_id else images.DEFAULT),
        timeout_seconds=railyard.run_timeout,
        env=trainer_environment(executor.trainer_settings, roots, executor.threads(profile), access.s3_prefixes),
        run_ids=run_ids,
        secrets=tuple(access.secrets),
    )


def start(job: Job, run: Run) -> dict | None:
    """Start a pending job on its executor and return its handle; None when it was launched already
    or the executor refused it (then it and its runs fail). ExecutorUnavailable: try on a later pass."""
    if job.status != JobStatus.PENDING:
        return None  # another dispatcher launched it
    executor = get_executor(job.executor)
    try:
        return executor.launch(job_inputs(job, run, executor))
    except ExecutorUnavailable:
        raise
    except Exception as exc:
        log.exception("launching job %s (run %s) failed", job.pk, run.pk)
        states.job_refused(job, f"could not start the trainer: {exc}")
        return None


def record_launches(started: list[tuple[Job, dict]]) -> int:
    """Record started jobs as launched, together; returns how many this call recorded.

    A job another launcher recorded first was adopted by it (same name, same folder); a job whose
    runs were all cancelled meanwhile is stopped.
    """
    recorded = states.jobs_launched(started)
    for job, _ in started:
        runs = recorded.get(job.pk)
        if runs is not None and not any(run.state.is_active for run in runs):
            stop_job(job, [])
    return len(recorded)


def launch(job: Job, run: Run) -> bool:
    """Start one pending job and record it; ExecutorUnavailable means try again on a later pass."""
    handle = start(job, run)
    return handle is not None and record_launches([(job, handle)]) == 1


def reconcile(executor_name: str | None = None) -> dict[str, int]:
    """One pass: dispatch queued runs, then observe the executor's in-flight jobs this worker holds
    (renewing its leases, and taking over free or expired ones) at once."""
    executor = get_executor(executor_name or railyard.executor)
    with metrics.RECONCILE_SECONDS.labels(executor.name).time():
        return _reconcile(executor)


def _reconcile(executor: Executor) -> dict[str, int]:
    counts = {"launched": dispatch(executor.name, MOST_LAUNCHED_PER_PASS), "running": 0, "finished": 0}
    jobs = leases.claim_in_flight(executor.name, leases.process_holder(), MOST_OBSERVED)
    _settle(executor)
    if not jobs:
        return counts
    try:
        observed = executor.observe([job_ref(job) for job in jobs])
    except ExecutorUnavailable as exc:
        log.warning("observing %d job(s) postponed: %s", len(jobs), exc)
        return counts
    carried = states.carried_by(jobs)
    for job in jobs:
        outcome = observed.get(job.pk, Outcome(JobPhase.FAILED, Cause.DISAPPEARED, "the executor reported nothing"))
        try:
            changed = apply(job, outcome, carried.get(job.pk, []))
        except StoreError as exc:
            log.warning("job %s: the artifact store failed, trying again next pass: %s", job.pk, exc)
            continue
        except LogNotReady as exc:
            log.warning("job %s: finishing it waits for its log: %s", job.pk, exc)
            continue
        if changed:
            key = "running" if outcome.phase in (JobPhase.PENDING, JobPhase.RUNNING) else "finished"
            counts[key] += 1
    if counts["finished"]:
        _settle(executor)
        counts["launched"] += dispatch(executor.name, MOST_LAUNCHED_PER_PASS)
    return counts


def _settle(executor: Executor) -> None:
    """End the segmented requests whose children have all ended (`segments.settle`); a store that fails
    leaves them for a later pass."""
    try:
        segments.settle(segments.ended(executor.name))
    except StoreError as exc:
        log.warning("settling segmented requests waits for the artifact store: %s", exc)


def apply(job: Job, outcome: Outcome, runs: list[Run] | None = None) -> bool:
    """Turn what the executor saw into transitions of the job and its runs (`runs`: those it carries,
    when the caller read them already); True if anything changed.

    The runs are finished first and the job last, so that a worker dying in between leaves the
    job in flight and the next pass finishes it again (finished runs are skipped).
    """
    runs = states.carried(job) if runs is None else runs
    if not any(run.state.is_active for run in runs):
        if outcome.phase == JobPhase.SUCCEEDED:
            return states.end_job(job, JobStatus.SUCCEEDED)  # its runs were finished by a worker that died
        if outcome.phase == JobPhase.FAILED:
            return _end_failed(job, outcome)
        return stop_job(job, runs)  # its runs were cancelled (or requeued) while it ran
    if outcome.phase == JobPhase.RUNNING:
        if not get_executor(job.executor).enforces_deadline and _timed_out(job):
            get_executor(job.executor).cancel(job_ref(job))
            deadline = f"the run exceeded its time limit of {railyard.run_timeout} seconds"
            return fail_job(job, runs, Outcome(JobPhase.FAILED, Cause.DEADLINE, deadline))
        return states.job_running(job, runs)
    if outcome.phase == JobPhase.PENDING:
        if outcome.message != job.message:
            Job.objects.filter(pk=job.pk, status=job.status).update(message=outcome.message)
            for run in runs:
                note(run, outcome.message)
        return False
    if outcome.phase == JobPhase.SUCCEEDED:
        # A segmented request's parent last: it plans once its generic model has finished.
        for run in sorted(runs, key=lambda run: run.kind == RunKind.SEGMENTED):
            if not run.state.is_active:
                continue
            if run.kind == RunKind.SEGMENTED:
                _keep_log(job, run)  # the planning job's own log
                segments.planned(run)
            else:
                finish_succeeded(job, run)
        return states.end_job(job, JobStatus.SUCCEEDED)
    return fail_job(job, runs, outcome)


def _timed_out(job: Job) -> bool:
    started = job.started_at or job.launched_at
    return started is not None and timezone.now() - started > timedelta(seconds=railyard.run_timeout)


def fail_job(job: Job, runs: list[Run], outcome: Outcome) -> bool:
    """Fail each of the job's active runs with the trainer's own reason (or retry it on a larger
    profile when it ran out of memory), then end the job."""
    cause = outcome.cause or Cause.CRASH
    for run in runs:
        if not run.state.is_active:
            continue
        if segments.is_packed(run) and run.kind != RunKind.SEGMENTED and _complete(run):
            finish_succeeded(job, run)  # a packed job's run that finished before the job died
            continue
        # A planning job's runs (a segmented request and its generic model) go on together or not at all.
        alone = run.kind not in (RunKind.SEGMENTED, RunKind.GENERIC)
        larger = _larger_profile(job, run) if cause == Cause.OOM and alone else None
        if larger is None:
            _fail(job, run, outcome.message)
            continue
        _keep_log(job, run)
        states.retry(
            run,
            larger,
            f"retried on {larger} after running out of memory on {job.compute_resource}: {outcome.message}",
        )
    return _end_failed(job, outcome)


def _complete(run: Run) -> bool:
    """Whether the run's trainer wrote its manifest (the last of its artifacts)."""
    try:
        open_store(run.artifact_uri).describe(v.MANIFEST)
    except ArtifactNotFound:
        return False
    return True


def _end_failed(job: Job, outcome: Outcome) -> bool:
    cause = outcome.cause or Cause.CRASH
    status = JobStatus.LOST if cause == Cause.DISAPPEARED else JobStatus.FAILED
    return states.end_job(job, status, cause, outcome.message)


def _larger_profile(job: Job, run: Run) -> str | None:
    """The profile to retry a run on after it ran out of memory: the next larger one, once, unless
    the request opted out (`retry.on_oom: false`)."""
    larger = railyard.compute_resources.get(job.compute_resource, {}).get("next")
    if not larger or larger not in railyard.compute_resources:
        return None
    if (run.spec.get("retry") or {}).get("on_oom") is False:
        return None
    retried = Job.objects.filter(memberships__run=run, cause=Cause.OOM).exclude(pk=job.pk).exists()
    return None if retried else larger


def stop_job(job: Job, runs: list[Run]) -> bool:
    """Stop a job no run wants any more; the cancelled runs keep the log it wrote."""
    get_executor(job.executor).cancel(job_ref(job))
    for run in runs:
        if run.status == RunStatus.CANCELLED:
            try:
                _keep_log(job, run)
            except LogNotReady as exc:
                log.warning("the log of cancelled run %s could not be kept: %s", run.pk, exc)
    return states.end_job(job, JobStatus.CANCELLED, Cause.CANCELLED, "its runs were cancelled")


def _fail(job: Job, run: Run, reason: str) -> bool:
    """Fail a run with the trainer's own reason when it left one, and keep what it wrote."""
    store = open_store(run.artifact_uri)
    for name in (v.SPEC, v.ERROR):
        try:
            raw = store.get(name)
        except ArtifactNotFound:
            continue
        artifacts.record(run, artifacts.entry(run, name, raw, "application/json"))
        if name == v.ERROR:
            error = json.loads(raw)
            kind = ERROR_KINDS.get(error.get("kind"), "trainer crashed")
            reason = f"{kind}: {error.get('message', reason)}"
    _keep_log(job, run)
    return states.mark_failed(run, reason)


def finish_succeeded(job: Job, run: Run) -> bool:
    """Check the trainer's manifest and checksums, record artifacts and metrics, then succeed."""
    store = open_store(run.artifact_uri)
    try:
        manifest = json.loads(store.get(v.MANIFEST))
    except ArtifactNotFound:
        return _fail(job, run, "the trainer exited successfully but wrote no manifest.json")
    listed_entries = manifest["artifacts"]
    for entry in listed_entries:
        # What the store says of each file (a HEAD on S3), never the model downloaded again.
        try:
            size, recorded = store.describe(entry["name"])
        except ArtifactNotFound:
            return _fail(job, run, f"artifact {entry['name']} is listed in manifest.json but missing from the store")
        if size != entry["size"] or (recorded is not None and recorded != entry["sha256"]):
            return _fail(job, run, f"artifact {entry['name']} does not match its recorded size and sha256")
    metrics = json.loads(store.get(v.METRICS_FILE))
    summary = json.loads(store.get(v.METADATA)).get("data_summary", {})
    listed = {entry["name"] for entry in listed_entries}
    comparison = json.loads(store.get(v.COMPARISON)) if v.COMPARISON in listed else None
    versus = json.loads(store.get(v.SEGMENT)) if v.SEGMENT in listed else None
    log_artifact = _keep_log(job, run)
    with transaction.atomic():
        if versus is not None:
            segments.child_succeeded(run, versus)
        for entry in listed_entries:
            artifacts.record(run, entry)
        if log_artifact:
            artifacts.record(run, log_artifact)
        summary, reason = provenance.compared(run, summary)
        extra = {"comparison": comparison} if comparison is not None else {}
        return states.mark_succeeded(run, metrics=metrics, data_summary=summary, reason=reason, **extra)


def _keep_log(job: Job, run: Run) -> dict | None:
    """Keep the trainer's full log among the run's artifacts as log.txt.

    - The executor's log (a pod's, or the local process's) is the whole story; when it cannot be
      read, the copy the trainer kept in the store as it went stands in.
    - With neither, `LogNotReady` while the executor is merely unavailable (the run finishes on a
      later pass), for at most LOG_WAIT; a log that cannot be had at all does not keep a run from ending.
    """
    store = open_store(run.artifact_uri)
    problem: ExecutorError | None = None
    try:
        # A packed job's log is every run's: each of its runs keeps the part the trainer wrote for it.
        text = "" if run.kind in segments.CHILDREN else get_executor(job.executor).logs(job_ref(job))
    except ExecutorError as exc:
        text, problem = "", exc
    if text:
        entry = store.put(v.LOG, text.encode(), "text/plain; charset=utf-8").to_dict()
    else:
        try:
            entry = artifacts.entry(run, v.LOG, store.get(v.LOG), "text/plain; charset=utf-8")
        except ArtifactNotFound:
            if isinstance(problem, ExecutorUnavailable) and _still_waiting(job, run):
                raise LogNotReady(str(problem)) from problem
            _LOG_WAITS.pop((job.pk, run.pk), None)
            if problem:
                log.warning("the log of run %s could not be kept: %s", run.pk, problem)
            return None
        if problem:
            log.warning("run %s: kept the trainer's own copy of its log; the executor's failed: %s", run.pk, problem)
    _LOG_WAITS.pop((job.pk, run.pk), None)
    artifacts.record(run, entry)
    return entry


class LogNotReady(Exception):
    """The run's log cannot be read yet; finish the run on a later pass."""


#: How long a finished run waits for a log that the executor cannot serve right now.
LOG_WAIT = timedelta(minutes=10)
_LOG_WAITS: dict[tuple[int, int], datetime] = {}


def _still_waiting(job: Job, run: Run) -> bool:
    first = _LOG_WAITS.setdefault((job.pk, run.pk), timezone.now())
    return timezone.now() - first < LOG_WAIT


def sweep(executor_name: str | None = None) -> list[str]:
    """Remove the executor's jobs that Railyard does not track as active (they ended, or are unknown).

    The executor lists its jobs first and asks which are active after: a job is recorded before it
    is launched, so one launched meanwhile is never mistaken for a stray.
    """
    executor = get_executor(executor_name or railyard.executor)

    def active(ids: set[int]) -> set[int]:
        return set(Job.objects.filter(pk__in=ids, status__in=JOB_ACTIVE).values_list("pk", flat=True))

    try:
        return executor.sweep(active)
    except ExecutorUnavailable as exc:
        log.warning("sweep postponed: %s", exc)
        return []


def stop(run_id: int) -> None:
    """Stop the job of a run that was cancelled."""
    run = Run.objects.get(pk=run_id)
    job = run.current_job()
    if job is not None and not job.state.is_terminal:
        stop_job(job, [run])
