"""The trainer's log: one line per stage with its duration, flushed as it happens, and kept in the store."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from railyard_trainer import vocabulary as v

if TYPE_CHECKING:
    from railyard_trainer.storage import ArtifactStore

STAGES = ("load", "filter", "split", "train", "evaluate", "serialize")
#: Stages only some runs have, and the stage of STAGES whose share of the progress they take: a
#: model's retrain compares itself with the champion once evaluated.
SUBSTAGES = {"compare": "evaluate"}
#: How many threads the executor lets this trainer use (its compute profile's, or its share of a machine).
THREADS_ENV = "RAILYARD_TRAINER_THREADS"


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    print(f"{stamp} {message}", file=sys.stdout, flush=True)


@contextmanager
def stage(name: str, details: dict | None = None, timings: dict[str, float] | None = None) -> Iterator[dict]:
    """Time a stage; the caller may add details (row counts) to the yielded dict, and collects the
    stage's seconds in `timings`."""
    details = {} if details is None else details
    log(f"stage={name} started")
    started = time.perf_counter()
    yield details
    seconds = time.perf_counter() - started
    if timings is not None:
        timings[name] = round(seconds, 3)
    extra = "".join(f" {key}={value}" for key, value in details.items())
    log(f"stage={name} done duration={seconds:.3f}s{extra}")


class StoredLog:
    """Everything the trainer prints, copied whole to the artifact store as `log.txt` as it goes.

    The copy is written at every stage line (unless `at_stages` is off: a packed job's, whose runs
    keep logs of their own), at most every `interval` seconds otherwise, and once more at the end, so
    that the log outlives the process even when its executor's own log (a pod's) cannot be read. A
    store that fails does not stop training.
    """

    NAME = v.LOG

    def __init__(self, store: ArtifactStore, interval: float = 5.0, at_stages: bool = True):
        self.store, self.interval, self.at_stages = store, interval, at_stages
        self.parts: list[str] = []
        self.saved_at = 0.0

    @contextmanager
    def capturing(self) -> Iterator[StoredLog]:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, self), _Tee(err, self)
        try:
            yield self
        finally:
            sys.stdout, sys.stderr = out, err
            self.save()

    def add(self, text: str) -> None:
        self.parts.append(text)
        if (self.at_stages and "stage=" in text) or time.monotonic() - self.saved_at > self.interval:
            self.save()

    def save(self) -> None:
        self.saved_at = time.monotonic()
        try:
            self.store.put(self.NAME, "".join(self.parts).encode(), "text/plain; charset=utf-8")
        except Exception as exc:  # noqa: BLE001 - the log copy must never fail a run; say so in the log itself
            sys.__stderr__.write(f"could not copy the log to the artifact store: {exc}\n")


class _Tee:
    def __init__(self, stream: TextIO, log: StoredLog):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        # The store's copy first: whoever has seen a line in the live log finds it in the copy too.
        self.log.add(text)
        self.stream.write(text)
        if "\n" in text:  # a library's progress lines reach the live log as they happen
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)
