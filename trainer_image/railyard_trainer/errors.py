"""Failures the trainer reports, and the exit codes that tell them apart."""

from __future__ import annotations

import json

from railyard_trainer import vocabulary as v
from railyard_trainer.storage import ArtifactStore, StoreError

EXIT_OK = 0
#: The spec or the data cannot train (sysexits' EX_DATAERR). Retrying will not help.
EXIT_BAD_DATA = 65
#: The trainer itself broke (sysexits' EX_SOFTWARE): a bug, not the user's data.
EXIT_CRASH = 70
#: The trainer ran out of memory (sysexits' EX_OSERR): a larger compute profile may help.
EXIT_OUT_OF_MEMORY = 71


class BadDataError(Exception):
    """The spec or the data cannot produce a model; the message names the problem."""

    exit_code = EXIT_BAD_DATA


def failure(exc: BaseException) -> tuple[str, int, str]:
    """What stopped a run, as error.json's kind, the exit code and the message."""
    if isinstance(exc, StoreError):
        # The store failing is not the data's fault: exit like a crash, so that a Job retries it.
        return "storage", EXIT_CRASH, str(exc)
    if isinstance(exc, MemoryError):
        return "oom", EXIT_OUT_OF_MEMORY, f"the trainer ran out of memory{': ' + str(exc) if str(exc) else ''}"
    if isinstance(exc, BadDataError | OSError | json.JSONDecodeError):
        return "bad_data", EXIT_BAD_DATA, str(exc)
    return "crash", EXIT_CRASH, f"{type(exc).__name__}: {exc}"


def write_error(store: ArtifactStore, kind: str, message: str) -> None:
    """error.json, so that the reason outlives the log; a store that fails too is only logged."""
    from railyard_trainer.stages import log

    try:
        store.put(v.ERROR, json.dumps({"kind": kind, "message": message}).encode(), "application/json")
    except (OSError, StoreError) as exc:
        log(f"could not write error.json: {exc}")
