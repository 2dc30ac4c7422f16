"""The trainer's log: one line per stage with its duration, flushed as it happens."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

STAGES = ("load", "filter", "split", "train", "evaluate", "serialize")


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    print(f"{stamp} {message}", file=sys.stdout, flush=True)


@contextmanager
def stage(name: str, details: dict | None = None) -> Iterator[dict]:
    """Time a stage; the caller may add details (row counts) to the yielded dict."""
    details = {} if details is None else details
    log(f"stage={name} started")
    started = time.perf_counter()
    yield details
    extra = "".join(f" {key}={value}" for key, value in details.items())
    log(f"stage={name} done duration={time.perf_counter() - started:.3f}s{extra}")
