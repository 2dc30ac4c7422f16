"""The local executor: each run's trainer is a subprocess on this machine.

- Every attempt has a work directory `<WORK_DIR>/<run id>/attempt-<n>/` holding the spec, the log,
  the supervisor's pid and, once the trainer ends, its exit code.
- The supervisor runs in a session of its own: cancel signals the whole group, and a restarted
  worker finds the run again through the work directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from training.conf import railyard
from training.executors.base import Executor, JobPhase, JobState

if TYPE_CHECKING:
    from training.models import Run

SUPERVISOR = Path(__file__).with_name("supervisor.py")
CANCEL_GRACE_SECONDS = 10


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the machine may have run out of memory)" if -code == signal.SIGKILL else ""
        return f"the trainer was killed by {name}{hint}"
    return f"the trainer exited with code {code}"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell it from a later process with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


class LocalExecutor(Executor):
    name = "local"

    def capacity(self) -> int:
        return railyard.local_concurrency

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        railyard.work_dir.mkdir(parents=True, exist_ok=True)
        with open(railyard.work_dir / ".dispatch.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def work_dir(self, run: Run) -> Path:
        return railyard.work_dir / str(run.pk) / f"attempt-{run.attempt}"

    def launch(self, run: Run) -> dict:
        directory = self.work_dir(run)
        handle_file = directory / "process.json"
        if handle_file.exists():
            return json.loads(handle_file.read_text())
        directory.mkdir(parents=True, exist_ok=True)
        spec_file = directory / "spec.json"
        spec_file.write_text(json.dumps(run.spec))
        command = [*railyard.trainer_command, "train", "--spec", str(spec_file), "--out", run.artifact_uri]
        with open(directory / "log.txt", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, str(SUPERVISOR), str(directory / "exit.json"), "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "RAILYARD_RUN_ID": str(run.pk)},
                start_new_session=True,
            )
        # Reap the supervisor when it ends so it never lingers as a zombie of this process.
        threading.Thread(target=process.wait, daemon=True).start()
        handle = {"pid": process.pid, "start_ticks": _start_ticks(process.pid), "work_dir": str(directory)}
        handle_file.write_text(json.dumps(handle))
        return handle

    def _state(self, handle: dict) -> JobState:
        directory = Path(handle["work_dir"])
        exit_file = directory / "exit.json"
        if exit_file.exists():
            code = json.loads(exit_file.read_text())["exit_code"]
            if code == 0:
                return JobState(JobPhase.SUCCEEDED, exit_code=0)
            return JobState(JobPhase.FAILED, describe_exit(code), exit_code=code)
        if self._alive(handle):
            return JobState(JobPhase.RUNNING)
        # Re-check: the trainer may have finished between the two looks.
        if exit_file.exists():
            return self._state(handle)
        return JobState(
            JobPhase.MISSING,
            "the trainer process disappeared without recording an exit code (was the worker or the machine restarted?)",
        )

    def _alive(self, handle: dict) -> bool:
        pid = handle.get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        expected = handle.get("start_ticks")
        return expected is None or _start_ticks(pid) == expected

    def observe(self, runs: list[Run]) -> dict[int, JobState]:
        states = {}
        for run in runs:
            if not run.job_handle:
                states[run.pk] = JobState(JobPhase.MISSING, "the run has no job handle")
            else:
                states[run.pk] = self._state(run.job_handle)
        return states

    def cancel(self, run: Run) -> None:
        handle = run.job_handle or {}
        if not self._alive(handle):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(handle["pid"], sig)
            deadline = time.monotonic() + CANCEL_GRACE_SECONDS
            while time.monotonic() < deadline:
                if not self._alive(handle) or (Path(handle["work_dir"]) / "exit.json").exists():
                    return
                time.sleep(0.1)

    def logs(self, run: Run, tail: int | None = None) -> str:
        directory = Path(run.job_handle["work_dir"]) if run.job_handle else self.work_dir(run)
        try:
            with open(directory / "log.txt", errors="replace") as fh:
                lines = deque(fh, maxlen=tail) if tail else fh.readlines()
        except FileNotFoundError:
            return ""
        return "".join(lines)
