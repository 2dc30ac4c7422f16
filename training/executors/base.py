"""The executor interface: launch, observe many at once, cancel, read logs; what a trainer may see."""

from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from railyard_trainer.paths import ROOTS_ENV
from railyard_trainer.stages import THREADS_ENV

if TYPE_CHECKING:
    from training.models import Run


#: The worker's settings that a trainer needs too: where S3 is, locale, the BLAS kernel to use.
#: Nothing else of the worker's environment (SECRET_KEY, DATABASE_URL, …) ever reaches a trainer.
TRAINER_SETTINGS = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "LANG",
    "LC_ALL",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)
#: What a trainer on this machine also needs from the worker: credentials for the artifact store and
#: data buckets, and how to find Python. Kubernetes Jobs get credentials only by reference to a Secret.
LOCAL_TRAINER_SETTINGS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "PATH",
    "HOME",
    "TMPDIR",
    "PYTHONPATH",
)


#: What tells a trainer's libraries how many threads (or worker processes) they may use.
THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT", THREADS_ENV)


def trainer_environment(names: tuple[str, ...], data_roots: list[str], threads: int) -> dict[str, str]:
    """The environment a trainer starts with: the named settings the worker has, the data roots, and
    its thread budget (so that trainers sharing a machine do not fight over its cores)."""
    env = {name: os.environ[name] for name in names if os.environ.get(name)}
    env[ROOTS_ENV] = ",".join(data_roots)
    env.update(dict.fromkeys(THREAD_LIMITS, str(threads)))
    return env


def profile_cpus(profile: dict) -> int:
    """Whole CPUs a compute profile allows (its CPU limit, else its request: '4', '2.5', '500m'), at least 1."""
    quantity = str(profile.get("limits", {}).get("cpu") or profile.get("requests", {}).get("cpu") or "1").strip()
    try:
        cpus = float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    except ValueError:
        return 1
    return max(1, int(cpus))


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
