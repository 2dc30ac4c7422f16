"""A run's statuses and the transitions between them: the one place that changes `Run.status`.

Every transition is a conditional update (`WHERE status = <expected>`) whose row count is
checked, so two workers can never both win, and each writes a RunEvent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

if TYPE_CHECKING:
    from training.models import Run


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.SUBMITTED, RunStatus.RUNNING})
#: Launched and not finished: what an executor is asked to observe.
IN_FLIGHT = frozenset({RunStatus.SUBMITTED, RunStatus.RUNNING})

#: The transitions the system makes on its own. Leaving a terminal state takes an operator.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.SUBMITTED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUBMITTED: frozenset({RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

WORKER = "worker"

#: The timestamp each status stamps when a run enters it.
STAMPS = {
    RunStatus.SUBMITTED: "submitted_at",
    RunStatus.RUNNING: "started_at",
    RunStatus.SUCCEEDED: "finished_at",
    RunStatus.FAILED: "finished_at",
    RunStatus.CANCELLED: "finished_at",
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

    - `operator=True` allows any move (an admin fixing a job's state); it is still conditional.
    - `fields` are written in the same update (metrics, job handle, failure reason).
    """
    from training.models import Run, RunEvent

    old = RunStatus(run.status)
    if not operator and new not in TRANSITIONS[old]:
        raise TransitionNotAllowed(f"run {run.pk}: {old} → {new} is not allowed")
    now = timezone.now()
    updates = {"status": new, "updated_at": now, "status_message": "", **fields}
    if new in STAMPS:
        updates[STAMPS[new]] = now
    if new == RunStatus.QUEUED:
        updates.update(submitted_at=None, started_at=None, finished_at=None)
    with transaction.atomic():
        if not Run.objects.filter(pk=run.pk, status=old).update(**updates):
            return False
        RunEvent.objects.create(run_id=run.pk, old_status=old, new_status=new, reason=reason, actor=actor)
    for name, value in updates.items():
        setattr(run, name, value)
    return True


def mark_submitted(run: Run, job_handle: dict, executor: str) -> bool:
    return transition(run, RunStatus.SUBMITTED, job_handle=job_handle, executor=executor, reason="launched")


def mark_running(run: Run, reason: str = "trainer started") -> bool:
    return transition(run, RunStatus.RUNNING, reason=reason)


def mark_succeeded(run: Run, metrics: dict, data_summary: dict) -> bool:
    return transition(run, RunStatus.SUCCEEDED, metrics=metrics, data_summary=data_summary, reason="trainer finished")


def mark_failed(run: Run, reason: str, actor: str = WORKER, operator: bool = False) -> bool:
    return transition(run, RunStatus.FAILED, reason=reason, actor=actor, operator=operator, failure_reason=reason)


def cancel(run: Run, actor: str, reason: str = "cancelled") -> bool:
    return transition(run, RunStatus.CANCELLED, reason=reason, actor=actor)


def requeue(run: Run, actor: str, reason: str = "requeued by an operator") -> bool:
    """An operator's action: send a run back to the queue for another attempt."""
    return transition(
        run,
        RunStatus.QUEUED,
        reason=reason,
        actor=actor,
        operator=True,
        attempt=run.attempt + 1,
        job_handle={},
        failure_reason="",
        metrics={},
        data_summary={},
    )
