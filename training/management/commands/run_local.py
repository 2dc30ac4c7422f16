"""The dashboard and the worker together, for a laptop: Ctrl-C (or SIGTERM) stops both."""

from __future__ import annotations

import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the dashboard and run the worker beside it until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: object, addrport: str, **options: object) -> None:
        worker = subprocess.Popen([sys.executable, "manage.py", "run_worker"], cwd=settings.BASE_DIR)
        # Ctrl-C and SIGTERM both end the server, and so stop the worker below, even when this was
        # started with SIGINT ignored (as a background job of a script).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            call_command("runserver", addrport, use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            self.stdout.write("Railyard stopped.")
