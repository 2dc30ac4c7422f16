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

from railyard_trainer.errors import EXIT_OK, failure, write_error
from railyard_trainer.stages import THREADS_ENV, StoredLog, log
from railyard_trainer.storage import ArtifactStore, open_store


def _train(args: argparse.Namespace) -> int:
    store = open_store(args.out)
    raw = _read_spec(args.spec)
    # A packed job's runs each keep their own log; the job's own copy is saved less often.
    with StoredLog(store, at_stages=not _is_job(raw)).capturing(), _thread_budget():
        return _train_into(raw, store)


def _read_spec(path: str) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return exc


def _is_job(raw: object) -> bool:
    return isinstance(raw, dict) and "runs" in raw


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


def _train_into(raw: object, store: ArtifactStore) -> int:
    try:
        if isinstance(raw, Exception):
            raise raw
        if _is_job(raw):
            from railyard_trainer.packed import run_job

            run_job(raw, store)
        elif isinstance(raw, dict) and "compose" in raw:
            from railyard_trainer import composed

            composed.run(raw, store)
        else:
            from railyard_trainer.train import run

            run(raw, store)
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure must leave a reason behind
        kind, code, message = failure(exc)
        if kind == "crash":
            traceback.print_exc()
    log(f"error kind={kind}: {message}")
    write_error(store, kind, message)
    return code


def _workflows(args: argparse.Namespace) -> int:
    from railyard_trainer.workflows import catalogue

    json.dump(catalogue(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="railyard_trainer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate and store one run (or a packed job's runs)")
    train.add_argument("--spec", required=True, help="path of the resolved spec, or of a packed job's (JSON)")
    train.add_argument("--out", required=True, help="artifact URI of the run, e.g. file:///…/runs/42")
    train.set_defaults(handler=_train)
    workflows = commands.add_parser("workflows", help="print the installed workflows as JSON")
    workflows.add_argument("--json", action="store_true", help="as JSON (the only form there is)")
    workflows.set_defaults(handler=_workflows)
    args = parser.parse_args(argv)
    return args.handler(args)
