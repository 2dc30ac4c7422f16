"""What a Kubernetes Job and its pods say about a job, as an `Outcome`: pure functions over the
API's own JSON (as a list or read answers it), so that every case is a table test.
"""

from __future__ import annotations

from typing import Any

from railyard_trainer.errors import EXIT_OUT_OF_MEMORY
from railyard_trainer.vocabulary import Cause
from training.executors.base import JobPhase, Outcome

#: Container states that keep a pod from ever starting, with the cause and what a person should do.
START_FAILURES: dict[str, tuple[Cause, str]] = {
    "ErrImagePull": (Cause.IMAGE_PULL, "the trainer image cannot be pulled"),
    "ImagePullBackOff": (Cause.IMAGE_PULL, "the trainer image cannot be pulled"),
    "InvalidImageName": (Cause.IMAGE_PULL, "the trainer image name is invalid"),
    "CreateContainerConfigError": (
        Cause.REFUSED,
        "the trainer container is misconfigured (a missing Secret or ConfigMap?)",
    ),
}
#: A failed Job's condition reasons.
JOB_FAILURES: dict[str, tuple[Cause, str]] = {
    "BackoffLimitExceeded": (Cause.CRASH, "the trainer failed on every attempt the Job allows"),
    "DeadlineExceeded": (Cause.DEADLINE, "the run exceeded its time limit"),
    "PodFailurePolicy": (Cause.BAD_DATA, "the trainer reported that the spec or data cannot train"),
}


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An object's conditions that hold, by type."""
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return (pod.get("status") or {}).get("containerStatuses") or []


def _newest_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", reverse=True)


def outcome(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    name: str,
    compute_resource: str,
    memory_limit: str,
    in_grace: bool,
) -> Outcome:
    """The outcome of the Job `name` (None when the cluster has none), from it and its pods.

    `in_grace`: the Job was launched so recently that not finding it means nothing yet.
    """
    if job is None:
        if in_grace:
            return Outcome(JobPhase.PENDING, message="waiting for the Job to appear")
        return Outcome(JobPhase.FAILED, Cause.DISAPPEARED, f"the Job {name} was deleted outside Railyard")
    held = conditions(job)
    if "Complete" in held or "SuccessCriteriaMet" in held:
        return Outcome(JobPhase.SUCCEEDED, exit_code=0)
    failed = held.get("Failed") or held.get("FailureTarget")
    if failed is not None:
        if how := next(filter(None, map(_out_of_memory, pods)), ""):
            return Outcome(
                JobPhase.FAILED,
                Cause.OOM,
                f"the trainer ran out of memory ({how}) with a limit of {memory_limit} on compute "
                f"resource {compute_resource!r}; a larger profile may help",
            )
        reason = failed.get("reason") or ""
        cause, words = JOB_FAILURES.get(reason, (Cause.CRASH, "the Job failed"))
        if reason == "DeadlineExceeded":
            words += f" of {(job.get('spec') or {}).get('activeDeadlineSeconds')} seconds"
        return Outcome(JobPhase.FAILED, cause, f"{words} ({reason}: {failed.get('message') or 'no message'})")
    if any((pod.get("status") or {}).get("phase") == "Running" for pod in pods):
        return Outcome(JobPhase.RUNNING)
    cause, words = waiting(pods)
    return Outcome(JobPhase.PENDING, cause, words or "waiting for the trainer's pod to start")


def waiting(pods: list[dict[str, Any]]) -> tuple[Cause | None, str]:
    """Why the newest pod does not run yet, when it says: an image it cannot pull, no node for it."""
    for pod in _newest_first(pods):
        for status in _container_statuses(pod):
            state = (status.get("state") or {}).get("waiting") or {}
            if state.get("reason") in START_FAILURES:
                cause, words = START_FAILURES[state["reason"]]
                return cause, f"{words} ({state['reason']}: {state.get('message') or ''})".strip()
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return (
                    Cause.UNSCHEDULABLE,
                    f"no node can run the trainer yet ({condition.get('reason')}: {condition.get('message')})",
                )
    return None, ""


def _out_of_memory(pod: dict[str, Any]) -> str:
    """How the pod's trainer ran out of memory, if it did: killed by the kernel at its limit, or
    stopped on a MemoryError of its own."""
    for status in _container_statuses(pod):
        for when in ("state", "lastState"):
            ended = (status.get(when) or {}).get("terminated") or {}
            if ended.get("reason") == "OOMKilled":
                return "OOMKilled"
            if ended.get("exitCode") == EXIT_OUT_OF_MEMORY:
                return "MemoryError"
    return ""
