"""django-q2 tasks: thin entry points into `training.worker`."""

from __future__ import annotations

from django_q.tasks import async_task

from training import worker


def dispatch() -> int:
    return worker.dispatch()


def stop(run_id: int) -> None:
    worker.stop(run_id)


def enqueue_dispatch() -> None:
    async_task("training.tasks.dispatch", task_name="dispatch")


def enqueue_stop(run_id: int) -> None:
    async_task("training.tasks.stop", run_id, task_name=f"stop-run-{run_id}")
