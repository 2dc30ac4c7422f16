"""Runs one trainer command and records its exit code: `python supervisor.py EXIT_FILE -- CMD...`.

The local executor starts this in a session of its own, so the trainer outlives a restarted
worker and its exit code is known to whichever worker looks next. It imports nothing from
Railyard, and is run by path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    exit_file, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: supervisor.py EXIT_FILE -- COMMAND...")
    # Cancelling signals the whole process group; the trainer stops, and this records how.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    child = subprocess.Popen(command)
    code = child.wait()
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"exit_code": code}, fh)
    os.replace(tmp, exit_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
