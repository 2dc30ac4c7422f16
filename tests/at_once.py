"""A function of Railyard's called in a process of its own, for tests of replicas racing: waits for a
go file, calls the function (with an ISO time, if given) and prints its answer as JSON.

    python tests/at_once.py <go-file> <module:function> [<ISO time>]
"""

from __future__ import annotations

import importlib
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

go, target, *moment = sys.argv[1:]
module, name = target.split(":")
function = getattr(importlib.import_module(module), name)
while not Path(go).exists():
    time.sleep(0.01)
print(json.dumps(function(*(datetime.fromisoformat(m) for m in moment))))
