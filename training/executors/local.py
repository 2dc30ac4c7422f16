"""The local executor: each job's trainer is a subprocess on this machine.

- Every job has a work directory `<WORK_DIR>/jobs/<job id>/` holding the spec, the log, the
  supervisor's pid (written by the supervisor before the trainer starts) and, once the trainer
  ends, its exit code.
- A trainer sees only the settings it needs (`trainer_environment`), never the worker's secrets.
- The supervisor runs in a session of its own: cancel signals the whole group, and a restarted
  worker finds the job again through the work directory.
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
from pathlib import Path

from railyard_trainer.errors import EXIT_BAD_DATA, EXIT_OUT_OF_MEMORY
from railyard_trainer.vocabulary import Cause
from training.conf import railyard
from training.executors.base import (
    LOCAL_TRAINER_SETTINGS,
    TRAINER_SETTINGS,
    Executor,
    ExecutorError,
    JobInputs,
    JobPhase,
    JobRef,
    Outcome,
    profile_cpus,
    profile_memory,
    read_catalogue,
    trainer_environment,
)
from training.executors.supervisor import start_ticks

SUPERVISOR = Path(__file__).with_name("supervisor.py")
CANCEL_GRACE_SECONDS = 10
SUPERVISOR_START_SECONDS = 30


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the machine may have run out of memory)" if -code == signal.SIGKILL else ""
        return f"the trainer was killed by {name}{hint}"
    if code == EXIT_OUT_OF_MEMORY:
        return "the trainer ran out of memory"
    return f"the trainer exited with code {code}"


def exit_cause(code: int) -> Cause:
    return {EXIT_BAD_DATA: Cause.BAD_DATA, EXIT_OUT_OF_MEMORY: Cause.OOM}.get(code, Cause.CRASH)


#: How long reading an image's catalogue may take.
CATALOGUE_SECONDS = 120


def trainer_command(image: str) -> list[str]:
    """How this machine runs `image`'s trainer: the installation's own, or a team's virtualenv
    (`RAILYARD_LOCAL_IMAGES`); ExecutorError for an image it has none for."""
    commands = {railyard.trainer_image: railyard.trainer_command, **railyard.local_images}
    if image not in commands:
        raise ExecutorError(f"no local trainer for image {image}: add it to RAILYARD_LOCAL_IMAGES")
    return list(commands[image])


class LocalExecutor(Executor):
    name = "local"
    trainer_settings = TRAINER_SETTINGS + LOCAL_TRAINER_SETTINGS

    def capacity(self) -> int:
        return railyard.local_concurrency

    def threads(self, profile: dict) -> int:
        """The profile's CPUs, but no more than a fair share of this machine's cores among the trainers
        that may run at once."""
        share = max(1, (os.cpu_count() or 1) // railyard.local_concurrency)
        return min(profile_cpus(profile), share)

    @staticmethod
    def work_dir(job_id: int) -> Path:
        return railyard.work_dir / "jobs" / str(job_id)

    def launch(self, job: JobInputs) -> dict:
        directory = self.work_dir(job.job_id)
        directory.mkdir(parents=True, exist_ok=True)
        # The attempt's lock is held by its supervisor for as long as it lives (it inherits this
        # open file), so a launch repeated after a worker died adopts the trainer it started.
        with open(directory / "supervisor.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._handle(directory)
            if (directory / "process.json").exists():
                return json.loads((directory / "process.json").read_text())  # it ran; observing says how
            spec_file = directory / "spec.json"
            spec_file.write_text(json.dumps(job.spec))
            command = [*trainer_command(job.image), "train", "--spec", str(spec_file), "--out", job.artifact_uri]
            with open(directory / "log.txt", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, str(SUPERVISOR), str(directory), *self._memory_limit(job), "--", *command],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                    env={**job.env, "PYTHONUNBUFFERED": "1", "RAILYARD_RUN_ID": str(job.run_id)},
                    start_new_session=True,
                    pass_fds=(lock.fileno(),),
                )
        # Reap the supervisor when it ends so it never lingers as a zombie of this process.
        threading.Thread(target=process.wait, daemon=True).start()
        return self._handle(directory, process)

    @staticmethod
    def _memory_limit(job: JobInputs) -> list[str]:
        memory = profile_memory(job.profile)
        return ["--memory", str(memory)] if memory else []

    def workflows(self, image: str) -> tuple[list[dict], list[str]]:
        command = [*trainer_command(image), "workflows", "--json"]
        env = trainer_environment(self.trainer_settings, [], 1)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=CATALOGUE_SECONDS, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExecutorError(f"{' '.join(command)}: {exc}") from exc
        if result.returncode != 0:
            raise ExecutorError(f"{' '.join(command)} failed: {result.stderr.strip()[-1000:]}")
        return read_catalogue(result.stdout, result.stderr)

    def _handle(self, directory: Path, process: subprocess.Popen | None = None) -> dict:
        """The handle the attempt's supervisor writes before it starts the trainer."""
        deadline = time.monotonic() + SUPERVISOR_START_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return json.loads((directory / "process.json").read_text())
            if process is not None and process.poll() is not None:
                raise ExecutorError(f"the trainer's supervisor exited with code {process.returncode} before starting")
            time.sleep(0.01)
        raise ExecutorError(f"the trainer's supervisor did not start within {SUPERVISOR_START_SECONDS} seconds")

    def _outcome(self, handle: dict) -> Outcome:
        directory = Path(handle["work_dir"])
        exit_file = directory / "exit.json"
        if exit_file.exists():
            code = json.loads(exit_file.read_text())["exit_code"]
            if code == 0:
                return Outcome(JobPhase.SUCCEEDED, exit_code=0)
            return Outcome(JobPhase.FAILED, exit_cause(code), describe_exit(code), exit_code=code)
        if self._alive(handle):
            return Outcome(JobPhase.RUNNING)
        # Re-check: the trainer may have finished between the two looks.
        if exit_file.exists():
            return self._outcome(handle)
        # The supervisor is gone without a word: whatever it left running must not write into the run.
        self._kill_leftovers(handle)
        return Outcome(
            JobPhase.FAILED,
            Cause.DISAPPEARED,
            "the trainer process disappeared without recording an exit code (was the worker or the machine restarted?)",
        )

    def _kill_leftovers(self, handle: dict) -> None:
        """Kill what is left of an attempt's process group (its trainer and the trainer's children).

        Members are told apart from an unrelated group that reuses the id by their working directory.
        """
        group, directory = handle.get("pid"), handle.get("work_dir")
        if not group or not directory:
            return
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                in_group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == group
                if in_group and os.readlink(entry / "cwd") == directory:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, IndexError, ValueError):
                continue

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
        return expected is None or start_ticks(pid) == expected

    def observe(self, jobs: list[JobRef]) -> dict[int, Outcome]:
        return {
            job.job_id: self._outcome(job.handle)
            if job.handle
            else Outcome(JobPhase.FAILED, Cause.DISAPPEARED, "the job has no handle")
            for job in jobs
        }

    def cancel(self, job: JobRef) -> None:
        handle = job.handle or {}
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

    def logs(self, job: JobRef, tail: int | None = None) -> str:
        directory = Path(job.handle["work_dir"]) if job.handle else self.work_dir(job.job_id)
        try:
            with open(directory / "log.txt", errors="replace") as fh:
                lines = deque(fh, maxlen=tail) if tail else fh.readlines()
        except FileNotFoundError:
            return ""
        return "".join(lines)
