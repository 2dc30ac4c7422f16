"""One scheduler tick as its own process, for tests of replicas racing: waits for a go file, then
ticks at the given time and prints what it fired as JSON.

    python tests/scheduler_tick.py <go-file> <ISO time>
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "railyard_site.settings")

import django

django.setup()

from training.retraining import scheduler  # noqa: E402

go, moment = Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
print(json.dumps(scheduler.tick(moment)))
