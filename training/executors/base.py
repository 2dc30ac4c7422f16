"""The executor interface: plain job inputs in, outcomes out (launch, observe many at once, cancel,
read logs); and what a trainer may see of the worker's settings."""

from __future__ import annotations

import enum
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from railyard_trainer.paths import ROOTS_ENV, S3_PREFIXES_ENV
from railyard_trainer.stages import THREADS_ENV
from railyard_trainer.vocabulary import Cause

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


def trainer_environment(
    names: tuple[str, ...], data_roots: list[str], threads: int, s3_prefixes: list[str] = ()
) -> dict[str, str]:
    """The environment a trainer starts with: the named settings the worker has, the data roots and S3
    prefixes of its project, and its thread budget (so that trainers sharing a machine do not fight
    over its cores)."""
    env = {name: os.environ[name] for name in names if os.environ.get(name)}
    env[ROOTS_ENV] = ",".join(data_roots)
    env[S3_PREFIXES_ENV] = ",".join(s3_prefixes)
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


#: Binary and decimal suffixes of Kubernetes quantities.
QUANTITY_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def profile_memory(profile: dict) -> int | None:
    """The bytes of memory a compute profile allows (its limit: '8Gi', '512M', '1073741824'), if any."""
    quantity = str(profile.get("limits", {}).get("memory") or "").strip()
    for suffix, factor in QUANTITY_SUFFIXES.items():
        if quantity.endswith(suffix):
            quantity, scale = quantity.removesuffix(suffix), factor
            break
    else:
        scale = 1
    try:
        return int(float(quantity) * scale) if quantity else None
    except ValueError:
        return None


class JobPhase(enum.StrEnum):
    PENDING = "pending"  # accepted, not yet running
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the cause says how (`disappeared` when the executor has no trace of it)


@dataclass(frozen=True)
class Outcome:
    """What an executor saw of a job: its phase, a cause from `vocabulary.Cause` when it failed (or what
    it waits for), and words for people."""

    phase: JobPhase
    cause: Cause | None = None
    message: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class JobInputs:
    """Everything an executor needs to start a job, with no database behind it."""

    job_id: int
    attempt: int
    run_id: int
    #: The run's resolved spec, and the folder its attempt writes into.
    spec: dict
    artifact_uri: str
    project: str
    workflow: str
    compute_resource: str
    profile: dict
    image: str
    timeout_seconds: int
    #: Plain settings for the trainer (a region, an endpoint, its thread budget).
    env: dict[str, str] = field(default_factory=dict)
    #: Every run the job carries (a segmented request's packed job carries many; `spec` is then the
    #: job's spec, `railyard_trainer.packed`).
    run_ids: tuple[int, ...] = ()
    #: The Secrets whose keys become the trainer's environment on Kubernetes (its project's).
    secrets: tuple[str, ...] = ()

    @property
    def request_spec(self) -> dict:
        """The spec the trainer reads its data by (a packed job's is its request's)."""
        return self.spec["spec"] if "runs" in self.spec else self.spec

    @property
    def outputs(self) -> list[str]:
        """Every folder the trainer writes into: its own, and each packed run's (and plan's)."""
        packed = [entry["out"] for entry in self.spec.get("runs", [])] if "runs" in self.spec else []
        return [self.artifact_uri, *packed, *filter(None, [self.spec.get("plan"), self.spec.get("generic")])]


@dataclass(frozen=True)
class JobRef:
    """A launched job as an executor finds it again: its id, its handle, and when it was launched."""

    job_id: int
    handle: dict
    compute_resource: str = ""
    launched_at: datetime | None = None


class ExecutorError(Exception):
    """The executor's backend could not do what was asked; the message says why in words."""


class ExecutorUnavailable(ExecutorError):
    """The executor's backend did not answer (a timeout, a 5xx): try again on a later pass."""


class Executor(ABC):
    name: str
    #: The worker's settings its trainers get (see `trainer_environment`).
    trainer_settings: tuple[str, ...] = TRAINER_SETTINGS
    #: Whether the backend stops a job at its time limit itself (a Job's activeDeadlineSeconds).
    enforces_deadline: bool = False

    def capacity(self) -> int | None:
        """How many jobs may be in flight at once; None for no limit."""
        return None

    def threads(self, profile: dict) -> int:
        """How many threads a trainer with this compute profile may use."""
        return profile_cpus(profile)

    @abstractmethod
    def launch(self, job: JobInputs) -> dict:
        """Start the job's trainer and return its handle; repeating it adopts the same job."""

    @abstractmethod
    def observe(self, jobs: list[JobRef]) -> dict[int, Outcome]:
        """The outcome so far of every given job, by job id, in one pass."""

    @abstractmethod
    def cancel(self, job: JobRef) -> None:
        """Stop the job if it still runs."""

    @abstractmethod
    def logs(self, job: JobRef, tail: int | None = None) -> str:
        """The trainer's log so far (its last `tail` lines)."""

    @abstractmethod
    def workflows(self, image: str) -> tuple[list[dict], list[str]]:
        """The workflows `image` holds (`python -m railyard_trainer workflows --json` run in it), and its
        warnings; ExecutorError saying why when they cannot be read."""

    def sweep(self, active: Callable[[set[int]], set[int]]) -> list[str]:
        """Remove the jobs it has whose ids `active` does not return; returns what was removed."""
        return []


def read_catalogue(output: str, warnings: str = "") -> tuple[list[dict], list[str]]:
    """A trainer's `workflows --json` output as entries, and its warning lines; ExecutorError when it is not one."""
    try:
        entries = json.loads(output)
    except json.JSONDecodeError:
        raise ExecutorError(f"it printed no catalogue: {output.strip()[-500:]!r}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"name", "task"} <= set(e) for e in entries):
        raise ExecutorError("it printed something other than a list of workflows")
    return entries, [line for line in warnings.splitlines() if line.strip()]
