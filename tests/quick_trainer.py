"""A stand-in for `python -m railyard_trainer` in tests of many runs at once.

`quick_trainer.py LEDGER train --spec SPEC --out URI`: appends the run id to LEDGER (one line per
start, so a run started twice shows twice), waits a moment, and writes what a trainer writes —
artifacts, metrics, metadata, then the manifest — through the real artifact store.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from railyard_trainer.storage import open_store


def main(ledger: str, command: str, spec_flag: str, spec_path: str, out_flag: str, out: str) -> int:
    assert (command, spec_flag, out_flag) == ("train", "--spec", "--out")
    spec = json.loads(Path(spec_path).read_text())
    with open(ledger, "a") as fh:  # O_APPEND: one short line is written whole
        fh.write(f"{spec['run_id']} {os.getpid()}\n")
    print("stage=train started", flush=True)
    time.sleep(0.3)
    store = open_store(out)
    written = [
        store.put("model.joblib", f"model of run {spec['run_id']}".encode(), "application/octet-stream"),
        store.put("metrics.json", json.dumps({"roc_auc": 0.5}).encode(), "application/json"),
        store.put("metadata.json", json.dumps({"data_summary": {"train_rows": 1}}).encode(), "application/json"),
    ]
    store.put("manifest.json", json.dumps({"artifacts": [a.to_dict() for a in written]}).encode(), "application/json")
    print("stage=train done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
