"""What users do with runs — submit, retry, cancel — shared by the REST API, the pages and the admin."""

from __future__ import annotations

import copy
import hashlib
import json

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from railyard_trainer.body import InvalidRequest, check_json
from railyard_trainer.vocabulary import DEFAULT_SEGMENT_JOBS, FILE, RunKind, RunStatus
from training import access, audit, compositions, contract, images, states
from training.conf import railyard
from training.models import AuditAction, IdempotencyKey, Project, Role, Run, RunEvent
from training.segments import services as segments
from training.teams import data

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class IdempotencyInFlight(Exception):
    """Another request with the same Idempotency-Key has not settled yet."""


def clean_idempotency_key(raw: str | None) -> str | None:
    """The Idempotency-Key header's value; InvalidRequest when it is too long or holds control characters."""
    key = (raw or "").strip()
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            {IDEMPOTENCY_HEADER: [f"Must be at most {MAX_IDEMPOTENCY_KEY} characters (it has {len(key)})."]}
        )
    if not key.isprintable():
        raise InvalidRequest({IDEMPOTENCY_HEADER: ["Must not contain control characters."]})
    return key


def resolve_spec(clean: dict, run_id: int) -> dict:
    """The trainer's spec: the cleaned request with paths made absolute and the run's identity added."""
    spec = copy.deepcopy(clean)
    access = data.named(clean["project"])
    for source in spec["data"]["features"]:
        if source["source"] == FILE:
            source["path"] = str(contract.data_file(source["path"], access))
    segment_by = spec.get("train", {}).get("segment_by")
    if segment_by and segment_by["jobs"] is None:  # the compute profile's number of jobs, else the default
        profile = railyard.compute_resources.get(clean["compute_resource"], {})
        segment_by["jobs"] = profile.get("segment_jobs", DEFAULT_SEGMENT_JOBS)
    spec["run_id"] = str(run_id)
    spec["seed"] = spec["data"]["holdout_sampling"].get("seed", 0)
    return spec


def submit(
    who: access.Who, payload: object, idempotency_key: str | None = None, cloned_from: Run | None = None
) -> tuple[Run, bool]:
    """Validate a request and queue a run in a project where `who` may launch; returns (run, created).

    With an idempotency key (Stripe's rules): a repeat of the same request returns the run made the
    first time, even when the repeats race each other (the later ones wait for the first); the key
    reused with another request is `IdempotencyConflict`; a key older than its lifetime is free again.
    """
    owner = access.caller(who).user
    if not idempotency_key:
        clean = contract.validate(payload)
        access.project_to_launch(who, clean["project"])
        return queue_run(owner, payload, clean, cloned_from=cloned_from), True
    check_json(payload)
    fingerprint = request_hash(payload)
    for _ in range(3):
        known = _live_key(owner, idempotency_key)
        if known is not None:
            if known.request_hash != fingerprint:
                raise IdempotencyConflict(
                    f"This Idempotency-Key was used with a different request (run {known.run_id}); "
                    "send a new key for a new request."
                )
            return known.run, False
        clean = contract.validate(payload)
        access.project_to_launch(who, clean["project"])
        try:
            with transaction.atomic():
                run = queue_run(owner, payload, clean, cloned_from=cloned_from)
                IdempotencyKey.objects.create(owner=owner, key=idempotency_key, request_hash=fingerprint, run=run)
            return run, True
        except IntegrityError:
            continue  # a concurrent request with this key committed first: answer as its repeat
    raise IdempotencyInFlight("A request with this Idempotency-Key is still being processed; retry shortly.")


def request_hash(payload: object) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def _live_key(owner: AbstractBaseUser, key: str) -> IdempotencyKey | None:
    """The key's record while it lives; an expired one is removed so that the key can be used again."""
    known = IdempotencyKey.objects.filter(owner=owner, key=key).select_related("run").first()
    if known is not None and known.created_at < timezone.now() - railyard.idempotency_key_ttl:
        IdempotencyKey.objects.filter(pk=known.pk, created_at=known.created_at).delete()
        return None
    return known


def forget_expired_idempotency_keys() -> int:
    cutoff = timezone.now() - railyard.idempotency_key_ttl
    return IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()[0]


def queue_run(
    owner: AbstractBaseUser,
    payload: object,
    clean: dict,
    retried_from: Run | None = None,
    cloned_from: Run | None = None,
    reason: str = "submitted",
    notify: bool = True,
    challenge: dict | None = None,
    **lineage: object,
) -> Run:
    """Queue a run of a cleaned request. `lineage`: the model it retrains, its template and clock;
    `challenge`: the champion its trainer compares it with; `notify=False` leaves dispatching to the
    worker's next pass (the scheduler fires many at once)."""
    from training import tasks

    composed = compositions.members(owner, clean) if "compose" in clean else None
    segmented = composed is None and bool(clean["train"].get("segment_by"))
    image = images.image_of(Project.objects.filter(name=clean["project"]).first())
    workflow = None if composed is not None else images.workflow(image, clean["train"]["workflow_name"])
    if segmented:
        segments.check_count(resolve_spec(clean, 0), workflow.task)
    kind = RunKind.COMPOSITION if composed is not None else RunKind.SEGMENTED if segmented else RunKind.SINGLE
    # No savepoint of its own: within a caller's transaction (a fire, an idempotent submit) a
    # failure here fails the caller's whole transaction.
    with transaction.atomic(savepoint=False):
        project, _ = Project.objects.get_or_create(name=clean["project"])
        run = Run.objects.create(
            kind=kind,
            owner=owner,
            user=clean["user"] or owner.get_username(),
            project=project,
            workflow=workflow,
            model_description=clean["model_description"],
            compute_resource=clean["compute_resource"],
            request=payload,
            executor=railyard.executor,
            retried_from=retried_from,
            cloned_from=cloned_from,
            artifact_uri="",
            **lineage,
        )
        run.spec = resolve_spec(clean, run.pk)
        if composed is not None:
            run.spec = compositions.complete(run.spec, composed)
        if challenge:
            run.spec["challenge"] = challenge
        run.artifact_uri = railyard.run_artifact_uri(run.pk, run.attempt)
        run.save(update_fields=["spec", "artifact_uri"])
        reason = f"retry of run {retried_from.pk}" if retried_from else reason
        RunEvent.objects.create(run=run, new_status=RunStatus.QUEUED, reason=reason, actor=owner.get_username())
        if segmented:
            segments.start(run)
        if notify:
            transaction.on_commit(tasks.enqueue_dispatch)
    return run


def retry(run: Run, who: access.Who) -> Run:
    """A new run from the same request, linked to the first (the request is validated again); `who`
    must be a member of its project."""
    access.require(who, run.project, Role.MEMBER)
    clean = contract.validate(run.request)
    lineage = {field: getattr(run, field) for field in ("model", "template", "scheduled_time", "timezone")}
    return queue_run(
        access.caller(who).user, run.request, clean, retried_from=run, challenge=run.spec.get("challenge"), **lineage
    )


def cancel(run: Run, actor: str) -> bool:
    """Cancel a queued or in-flight run; the worker stops its job. False if it had already ended."""
    from training import tasks

    if run.state.is_terminal:
        return False
    with transaction.atomic():
        if not states.cancel(run, actor=actor, reason=f"cancelled by {actor}"):
            return False
        segments.cancel_children(run, actor)
        audit.record(actor, AuditAction.CANCELLED, run.project, f"run {run.pk}")
    if run.memberships.filter(attempt=run.attempt).exists():  # it has a job (launched, or about to be)
        transaction.on_commit(lambda: tasks.enqueue_stop(run.pk))
    return True


def requeue(run: Run, actor: str) -> bool:
    """An operator sends an ended run back to the queue as a new attempt; earlier attempts keep their
    jobs and artifacts."""
    from training import tasks

    if not run.state.is_terminal:
        return False
    with transaction.atomic():
        if not states.requeue(run, actor=actor):
            return False
        transaction.on_commit(tasks.enqueue_dispatch)
    return True
