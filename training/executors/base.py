"""The executor interface: launch, observe many at once, cancel, read logs."""

from __future__ import annotations

import contextlib
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.models import Run


class JobPhase(enum.StrEnum):
    PENDING = "pending"  # accepted, not yet running
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSING = "missing"  # the executor knows no job for the run


@dataclass(frozen=True)
class JobState:
    phase: JobPhase
    reason: str = ""
    exit_code: int | None = None


class ExecutorError(Exception):
    """The executor's backend could not do what was asked; the message says why in words."""


class ExecutorUnavailable(ExecutorError):
    """The executor's backend did not answer (a timeout, a 5xx): try again on a later pass."""


class Executor(ABC):
    name: str
    #: Whether the backend stops a run at its time limit itself (a Job's activeDeadlineSeconds).
    enforces_deadline: bool = False

    def capacity(self) -> int | None:
        """How many runs may be in flight at once; None for no limit."""
        return None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held while counting capacity and launching, so two dispatchers cannot overfill it."""
        yield

    @abstractmethod
    def launch(self, run: Run) -> dict:
        """Start the trainer for the run and return its job handle; repeating it adopts the same job."""

    @abstractmethod
    def observe(self, runs: list[Run]) -> dict[int, JobState]:
        """The state of every given run's job, in one pass."""

    @abstractmethod
    def cancel(self, run: Run) -> None:
        """Stop the run's job if it still runs."""

    @abstractmethod
    def logs(self, run: Run, tail: int | None = None) -> str:
        """The trainer's log so far (its last `tail` lines)."""

    def sweep(self, keep: set[tuple[int, int]]) -> list[str]:
        """Remove jobs whose (run id, attempt) is not in `keep`; returns what was removed."""
        return []
