"""Specs and runs of the trainer on its own, shared by its tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def spec_dict(path: Path, **overrides) -> dict:
    raw = {
        "run_id": "t",
        "data": {
            "features": [
                {
                    "names": ["day", "x", "colour", "y"],
                    "source": "file",
                    "format": "parquet",
                    "path": str(path),
                    "date_column": "day",
                }
            ],
            "date_range": {"start": "2026-01-01", "end": "2026-03-01"},
            "filters": [],
            "holdout_sampling": {
                "sampling_function": "DATE_RANGE",
                "date_range": {"start": "2026-02-01", "end": "2026-03-01"},
            },
        },
        "train": {
            "workflow_name": "logistic_regression",
            "classifier_features": ["x", "colour"],
            "label": "y",
            "custom_params": {},
        },
    }
    for key, value in overrides.items():
        raw["data"][key] = value
    return raw


def run_trainer(tmp_path: Path, raw: dict) -> tuple[int, Path]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(raw))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "railyard_trainer", "train", "--spec", str(spec_file), "--out", f"file://{out}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    (tmp_path / "log.txt").write_text(result.stdout + result.stderr)
    return result.returncode, out
