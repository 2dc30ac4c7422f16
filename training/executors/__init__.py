"""Executors start the trainer for a job and report on it; the worker talks only to this interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.executors.base import (
    Executor,
    ExecutorError,
    ExecutorUnavailable,
    JobInputs,
    JobPhase,
    JobRef,
    Outcome,
)

if TYPE_CHECKING:
    from training.models import Job

__all__ = [
    "Executor",
    "ExecutorError",
    "ExecutorUnavailable",
    "JobInputs",
    "JobPhase",
    "JobRef",
    "Outcome",
    "get_executor",
    "job_ref",
]

_instances: dict[str, Executor] = {}


def get_executor(name: str) -> Executor:
    """The process-wide executor of that name (`local` or `kubernetes`)."""
    if name not in _instances:
        if name == "local":
            from training.executors.local import LocalExecutor

            _instances[name] = LocalExecutor()
        elif name == "kubernetes":
            from training.executors.kubernetes import KubernetesExecutor

            _instances[name] = KubernetesExecutor()
        else:
            raise ValueError(f"unknown executor {name!r} (RAILYARD_EXECUTOR)")
    return _instances[name]


def job_ref(job: Job) -> JobRef:
    """A job as its executor finds it again, with nothing of the database."""
    return JobRef(job.pk, job.handle, job.compute_resource, job.launched_at)
