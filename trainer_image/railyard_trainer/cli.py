"""`python -m railyard_trainer train --spec SPEC.json --out URI` and `... workflows`.

Exit codes: 0 success, 65 the spec or data cannot train (the message says why), 70 a crash,
71 out of memory.
On failure `error.json` is written to the store when it can be, so the reason outlives the log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from railyard_trainer import vocabulary as v
from railyard_trainer.errors import EXIT_BAD_DATA, EXIT_CRASH, EXIT_OK, EXIT_OUT_OF_MEMORY, BadDataError
from railyard_trainer.stages import THREADS_ENV, StoredLog, log
from railyard_trainer.storage import ArtifactStore, StoreError, open_store


def _train(args: argparse.Namespace) -> int:
    store = open_store(args.out)
    with StoredLog(store).capturing(), _thread_budget():
        return _train_into(args, store)


@contextmanager
def _thread_budget() -> Iterator[None]:
    """Hold the native thread pools (OpenMP, BLAS) to the executor's budget for this trainer."""
    raw = os.environ.get(THREADS_ENV, "")
    if not raw.isdigit() or int(raw) < 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    log(f"threads={raw}")
    with threadpool_limits(limits=int(raw)):
        yield


def _train_into(args: argparse.Namespace, store: ArtifactStore) -> int:
    from railyard_trainer.train import run

    try:
        raw = json.loads(Path(args.spec).read_text())
        run(raw, store)
        return EXIT_OK
    except StoreError as exc:
        # The store failing is not the data's fault: exit like a crash, so that a Job retries it.
        kind, code, message = "storage", EXIT_CRASH, str(exc)
    except MemoryError as exc:
        kind, code = "oom", EXIT_OUT_OF_MEMORY
        message = f"the trainer ran out of memory{': ' + str(exc) if str(exc) else ''}"
    except (BadDataError, OSError, json.JSONDecodeError) as exc:
        kind, code, message = "bad_data", EXIT_BAD_DATA, str(exc)
    except Exception as exc:  # noqa: BLE001 - every crash must leave a reason behind
        traceback.print_exc()
        kind, code, message = "crash", EXIT_CRASH, f"{type(exc).__name__}: {exc}"
    log(f"error kind={kind}: {message}")
    try:
        store.put(v.ERROR, json.dumps({"kind": kind, "message": message}).encode(), "application/json")
    except (OSError, StoreError) as exc:
        log(f"could not write error.json: {exc}")
    return code


def _workflows(args: argparse.Namespace) -> int:
    from railyard_trainer.workflows import catalogue

    json.dump(catalogue(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="railyard_trainer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate and store one run")
    train.add_argument("--spec", required=True, help="path of the resolved spec (JSON)")
    train.add_argument("--out", required=True, help="artifact URI of the run, e.g. file:///…/runs/42")
    train.set_defaults(handler=_train)
    workflows = commands.add_parser("workflows", help="print the installed workflows as JSON")
    workflows.set_defaults(handler=_workflows)
    args = parser.parse_args(argv)
    return args.handler(args)
