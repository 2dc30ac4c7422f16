"""What users do with runs — submit, retry, cancel — shared by the REST API, the pages and the admin."""

from __future__ import annotations

import copy

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from training import contract, states
from training.conf import railyard
from training.models import Artifact, Project, Run, RunEvent, Workflow
from training.states import RunStatus


def resolve_spec(clean: dict, run_id: int) -> dict:
    """The trainer's spec: the cleaned request with paths made absolute and the run's identity added."""
    spec = copy.deepcopy(clean)
    for source in spec["data"]["features"]:
        if source["source"] == "file":
            source["path"] = str(contract.resolve_path(source["path"]))
    spec["run_id"] = str(run_id)
    spec["seed"] = spec["data"]["holdout_sampling"].get("seed", 0)
    return spec


def submit(owner: AbstractBaseUser, payload: object, idempotency_key: str | None = None) -> tuple[Run, bool]:
    """Validate a request and queue a run; returns (run, created).

    A repeat with the same idempotency key returns the run made the first time, even when the
    repeats race each other.
    """
    clean = contract.validate(payload)
    if idempotency_key:
        existing = Run.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    try:
        run = _create(owner, payload, clean, idempotency_key)
    except IntegrityError:
        if not idempotency_key:
            raise
        return Run.objects.get(owner=owner, idempotency_key=idempotency_key), False
    return run, True


def _create(
    owner: AbstractBaseUser, payload: object, clean: dict, idempotency_key: str | None, retried_from: Run | None = None
) -> Run:
    from training import tasks

    with transaction.atomic():
        project, _ = Project.objects.get_or_create(name=clean["project"])
        run = Run.objects.create(
            owner=owner,
            user=clean["user"] or owner.get_username(),
            project=project,
            workflow=Workflow.objects.get(name=clean["train"]["workflow_name"]),
            model_description=clean["model_description"],
            compute_resource=clean["compute_resource"],
            request=payload,
            executor=railyard.executor,
            idempotency_key=idempotency_key or None,
            retried_from=retried_from,
            artifact_uri="",
        )
        run.spec = resolve_spec(clean, run.pk)
        run.artifact_uri = railyard.run_artifact_uri(run.pk)
        run.save(update_fields=["spec", "artifact_uri"])
        reason = f"retry of run {retried_from.pk}" if retried_from else "submitted"
        RunEvent.objects.create(run=run, new_status=RunStatus.QUEUED, reason=reason, actor=owner.get_username())
        transaction.on_commit(tasks.enqueue_dispatch)
    return run


def retry(run: Run, owner: AbstractBaseUser) -> Run:
    """A new run from the same request, linked to the first (the request is validated again)."""
    clean = contract.validate(run.request)
    return _create(owner, run.request, clean, None, retried_from=run)


def cancel(run: Run, actor: str) -> bool:
    """Cancel a queued or in-flight run; the worker stops its job. False if it had already ended."""
    from training import tasks

    if run.state.is_terminal:
        return False
    launched = run.status in states.IN_FLIGHT
    if not states.cancel(run, actor=actor, reason=f"cancelled by {actor}"):
        return False
    if launched:
        transaction.on_commit(lambda: tasks.enqueue_stop(run.pk))
    return True


def requeue(run: Run, actor: str) -> bool:
    """An operator sends an ended run back to the queue as a new attempt; its old artifacts are dropped."""
    from training import tasks

    if not run.state.is_terminal:
        return False
    with transaction.atomic():
        if not states.requeue(run, actor=actor):
            return False
        Artifact.objects.filter(run=run).delete()
        transaction.on_commit(tasks.enqueue_dispatch)
    return True
