"""The dashboard and the worker together, for a laptop: Ctrl-C (or SIGTERM) stops both.

Both run as child processes and live and die together: when either stops (the web server cannot
take its port, say), the other is stopped too and `run_local` exits with the failure's code.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve the dashboard and run the worker beside it until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: object, addrport: str, **options: object) -> None:
        # Ctrl-C and SIGTERM both stop the two below, even when this was started with SIGINT
        # ignored (as a background job of a script).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        children = {
            "web server": self._start("runserver", addrport, "--noreload"),
            "worker": self._start("run_worker"),
        }
        ended = None
        try:
            while ended is None:
                ended = next(((name, p.returncode) for name, p in children.items() if p.poll() is not None), None)
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            for process in children.values():
                _stop(process)
            self.stdout.write("Railyard stopped.")
        if ended is not None and ended[1] != 0:
            raise CommandError(f"the {ended[0]} stopped with exit code {ended[1]}; see its message above")

    def _start(self, *command: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "manage.py", *command], cwd=settings.BASE_DIR)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
