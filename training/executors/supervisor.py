"""Runs one trainer command and records its exit code: `supervisor.py WORK_DIR [--memory BYTES] -- CMD...`.

The local executor starts this in a session of its own, holding the job's lock file open for it,
so the trainer outlives a restarted worker and its exit code is known to whichever worker looks
next. Before the trainer starts, `process.json` names this supervisor: the launch record is on
disk before there is anything to lose. The trainer dies with its supervisor, and may use at most
`--memory` bytes of address space (RLIMIT_AS, the compute profile's memory limit), so that a
trainer over it fails with a MemoryError of its own rather than starving the machine. It imports
nothing from Railyard, and is run by path.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell it from a later process with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def write_whole(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _prepare(parent: int, memory: int | None) -> None:
    """In the trainer, before it runs: be killed when the supervisor dies, however it dies, and keep
    to the memory limit."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor died before the line above took effect
        os._exit(1)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def main(argv: list[str]) -> int:
    work_dir, *rest = argv
    memory = None
    if rest[:1] == ["--memory"] and len(rest) > 1 and rest[1].isdigit():
        memory, rest = int(rest[1]), rest[2:]
    separator, *command = rest or [""]
    if separator != "--" or not command:
        sys.exit("usage: supervisor.py WORK_DIR [--memory BYTES] -- COMMAND...")
    directory = Path(work_dir)
    me = os.getpid()
    write_whole(directory / "process.json", {"pid": me, "start_ticks": start_ticks(me), "work_dir": str(directory)})
    # Cancelling signals the whole process group; the trainer stops, and this records how.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    # preexec_fn is safe here: the supervisor has a single thread.
    child = subprocess.Popen(command, preexec_fn=lambda: _prepare(me, memory))
    code = child.wait()
    write_whole(directory / "exit.json", {"exit_code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
