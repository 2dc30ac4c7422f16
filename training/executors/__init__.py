"""Executors start the trainer for a run and report on it; the worker talks only to this interface."""

from __future__ import annotations

from training.executors.base import Executor, ExecutorError, ExecutorUnavailable, JobPhase, JobState

__all__ = ["Executor", "ExecutorError", "ExecutorUnavailable", "JobPhase", "JobState", "get_executor"]

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
