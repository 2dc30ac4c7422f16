"""The worker's loop: launch queued runs, observe in-flight ones, finish them from their artifacts.

Slow I/O (processes, storage, the cluster API) happens outside transactions; every status change
goes through `training.states`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from railyard_trainer.storage import ArtifactNotFound, StoreError, open_store, sha256_hex
from training import leases, states
from training.conf import railyard
from training.executors import ExecutorError, ExecutorUnavailable, JobPhase, JobState, get_executor
from training.models import Artifact, Run
from training.states import RunStatus

log = logging.getLogger(__name__)

#: How the trainer's error.json kinds read in a run's failure reason.
ERROR_KINDS = {"bad_data": "bad data", "crash": "trainer crashed", "storage": "the artifact store failed"}


def dispatch(executor_name: str | None = None) -> int:
    """Launch queued runs, oldest first, as far as the executor's capacity allows; returns how many.

    One dispatcher per executor at a time, by lease, whichever process it runs in (the reconcile
    loop, a django-q task, another worker replica); the others leave the pass to it.
    """
    executor = get_executor(executor_name or railyard.executor)
    launched = 0
    with leases.held(f"dispatch:{executor.name}") as lease:
        if lease is None:
            return 0
        capacity = executor.capacity()
        queued = (
            Run.objects.filter(status=RunStatus.QUEUED, executor=executor.name)
            .with_related()
            .order_by("created_at", "id")
        )
        if capacity is not None:
            in_flight = Run.objects.filter(status__in=states.IN_FLIGHT, executor=executor.name).count()
            queued = queued[: max(capacity - in_flight, 0)]
        for run in list(queued):
            if not lease.renew():
                log.warning("dispatching for %s stopped: the lease passed to another worker", executor.name)
                break
            try:
                launched += launch(run)
            except ExecutorUnavailable as exc:
                # The backend is down: the other queued runs would only wait out the same retries.
                log.warning("launching run %s postponed: %s", run.pk, exc)
                note(run, f"waiting: {exc}")
                break
    return launched


def note(run: Run, message: str) -> None:
    """Say on the run what it waits for; a status change in between wins (and clears it)."""
    Run.objects.filter(pk=run.pk, status=run.status).update(status_message=message[:1000])


def launch(run: Run) -> bool:
    """Start the run's job; ExecutorUnavailable means try again on a later pass."""
    executor = get_executor(run.executor)
    try:
        handle = executor.launch(run)
    except ExecutorUnavailable:
        raise
    except Exception as exc:
        log.exception("launching run %s failed", run.pk)
        return states.mark_failed(run, f"could not start the trainer: {exc}")
    if states.mark_submitted(run, handle, executor.name):
        return True
    # Someone else moved the run meanwhile. Stop the job only when it is no longer wanted (the run
    # was cancelled or requeued as a new attempt); a job whose run is still active is never deleted.
    attempt = run.attempt
    run.refresh_from_db(fields=["status", "attempt"])
    if run.state.is_terminal or run.attempt != attempt:
        executor.cancel(Run(pk=run.pk, job_handle=handle, attempt=attempt))
    return False


def reconcile(executor_name: str | None = None) -> dict[str, int]:
    """One pass: dispatch queued runs, then observe every in-flight run of the executor at once."""
    executor = get_executor(executor_name or railyard.executor)
    counts = {"launched": dispatch(executor.name), "running": 0, "finished": 0}
    in_flight = list(Run.objects.filter(status__in=states.IN_FLIGHT, executor=executor.name).with_related())
    if not in_flight:
        return counts
    try:
        observed = executor.observe(in_flight)
    except ExecutorUnavailable as exc:
        log.warning("observing %d run(s) postponed: %s", len(in_flight), exc)
        return counts
    for run in in_flight:
        state = observed.get(run.pk, JobState(JobPhase.MISSING, "the executor reported nothing"))
        try:
            changed = apply(run, state)
        except StoreError as exc:
            log.warning("run %s: the artifact store failed, trying again next pass: %s", run.pk, exc)
            continue
        except LogNotReady as exc:
            log.warning("run %s: finishing it waits for its log: %s", run.pk, exc)
            continue
        if changed:
            key = "running" if state.phase in (JobPhase.PENDING, JobPhase.RUNNING) else "finished"
            counts[key] += 1
    counts["launched"] += dispatch(executor.name) if counts["finished"] else 0
    return counts


def apply(run: Run, state: JobState) -> bool:
    """Turn what the executor saw into a transition; True if the run changed."""
    if state.phase == JobPhase.RUNNING:
        if not get_executor(run.executor).enforces_deadline and _timed_out(run):
            get_executor(run.executor).cancel(run)
            return _fail(run, f"the run exceeded its time limit of {railyard.run_timeout} seconds")
        return run.status == RunStatus.SUBMITTED and states.mark_running(run)
    if state.phase == JobPhase.PENDING:
        if state.reason != run.status_message:
            note(run, state.reason)
        return False
    if state.phase == JobPhase.SUCCEEDED:
        return finish_succeeded(run)
    # FAILED, or MISSING: the executor reports a job as missing only once it is sure it is gone.
    return _fail(run, state.reason)


def _timed_out(run: Run) -> bool:
    started = run.started_at or run.submitted_at
    return started is not None and timezone.now() - started > timedelta(seconds=railyard.run_timeout)


def _fail(run: Run, reason: str) -> bool:
    """Fail a run with the trainer's own reason when it left one, and keep what it wrote."""
    store = open_store(run.artifact_uri)
    for name in ("spec.json", "error.json"):
        try:
            raw = store.get(name)
        except ArtifactNotFound:
            continue
        _save_artifact(run, _entry(run, name, raw, "application/json"))
        if name == "error.json":
            error = json.loads(raw)
            kind = ERROR_KINDS.get(error.get("kind"), "trainer crashed")
            reason = f"{kind}: {error.get('message', reason)}"
    _keep_log(run)
    return states.mark_failed(run, reason)


def finish_succeeded(run: Run) -> bool:
    """Check the trainer's manifest and checksums, record artifacts and metrics, then succeed."""
    store = open_store(run.artifact_uri)
    try:
        manifest = json.loads(store.get("manifest.json"))
    except ArtifactNotFound:
        return _fail(run, "the trainer exited successfully but wrote no manifest.json")
    artifacts = manifest["artifacts"]
    for entry in artifacts:
        # What the store says of each file (a HEAD on S3), never the model downloaded again.
        try:
            size, recorded = store.describe(entry["name"])
        except ArtifactNotFound:
            return _fail(run, f"artifact {entry['name']} is listed in manifest.json but missing from the store")
        if size != entry["size"] or (recorded is not None and recorded != entry["sha256"]):
            return _fail(run, f"artifact {entry['name']} does not match its recorded size and sha256")
    metrics = json.loads(store.get("metrics.json"))
    summary = json.loads(store.get("metadata.json")).get("data_summary", {})
    log_artifact = _keep_log(run)
    with transaction.atomic():
        for entry in artifacts:
            _save_artifact(run, entry)
        if log_artifact:
            _save_artifact(run, log_artifact)
        return states.mark_succeeded(run, metrics=metrics, data_summary=summary)


def _keep_log(run: Run) -> dict | None:
    """Keep the trainer's full log among the run's artifacts as log.txt.

    - The executor's log (a pod's, or the local process's) is the whole story; when it cannot be
      read, the copy the trainer kept in the store as it went stands in.
    - With neither, `LogNotReady` while the executor is merely unavailable (the run finishes on a
      later pass), for at most LOG_WAIT; a log that cannot be had at all does not keep a run from ending.
    """
    store = open_store(run.artifact_uri)
    problem: ExecutorError | None = None
    try:
        text = get_executor(run.executor).logs(run)
    except ExecutorError as exc:
        text, problem = "", exc
    if text:
        entry = store.put("log.txt", text.encode(), "text/plain; charset=utf-8").to_dict()
    else:
        try:
            entry = _entry(run, "log.txt", store.get("log.txt"), "text/plain; charset=utf-8")
        except ArtifactNotFound:
            if isinstance(problem, ExecutorUnavailable) and _still_waiting(run):
                raise LogNotReady(str(problem)) from problem
            _LOG_WAITS.pop((run.pk, run.attempt), None)
            if problem:
                log.warning("the log of run %s could not be kept: %s", run.pk, problem)
            return None
        if problem:
            log.warning("run %s: kept the trainer's own copy of its log; the executor's failed: %s", run.pk, problem)
    _LOG_WAITS.pop((run.pk, run.attempt), None)
    _save_artifact(run, entry)
    return entry


class LogNotReady(Exception):
    """The run's log cannot be read yet; finish the run on a later pass."""


#: How long a finished run waits for a log that the executor cannot serve right now.
LOG_WAIT = timedelta(minutes=10)
_LOG_WAITS: dict[tuple[int, int], datetime] = {}


def _still_waiting(run: Run) -> bool:
    first = _LOG_WAITS.setdefault((run.pk, run.attempt), timezone.now())
    return timezone.now() - first < LOG_WAIT


def _entry(run: Run, name: str, data: bytes, content_type: str) -> dict:
    return {
        "name": name,
        "uri": f"{run.artifact_uri}/{name}",
        "size": len(data),
        "sha256": sha256_hex(data),
        "content_type": content_type,
    }


def _save_artifact(run: Run, entry: dict) -> None:
    Artifact.objects.update_or_create(
        run=run,
        name=entry["name"],
        defaults={k: entry[k] for k in ("uri", "size", "sha256", "content_type")},
    )


def sweep(executor_name: str | None = None) -> list[str]:
    """Remove jobs that no active run owns (their runs ended, or never existed)."""
    executor = get_executor(executor_name or railyard.executor)
    keep = set(Run.objects.active().filter(executor=executor.name).values_list("pk", "attempt"))
    try:
        return executor.sweep(keep)
    except ExecutorUnavailable as exc:
        log.warning("sweep postponed: %s", exc)
        return []


def stop(run_id: int) -> None:
    """Stop the job of a run that was cancelled."""
    run = Run.objects.get(pk=run_id)
    executor = get_executor(run.executor)
    executor.cancel(run)
    try:
        _keep_log(run)
    except LogNotReady as exc:
        log.warning("the log of cancelled run %s could not be kept: %s", run.pk, exc)
