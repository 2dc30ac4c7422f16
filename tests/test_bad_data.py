"""Data no model can learn from ends the run as bad data (exit 65, not retried), naming the column
and how many rows: infinite values, a label empty in every row, text among a column's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from railyard_trainer.errors import EXIT_BAD_DATA
from tests.trainer_runs import run_trainer, spec_dict


def frame_with(tmp_path: Path, name: str, values: list, fmt: str = "parquet") -> Path:
    """`small`'s shape (76 days) with one column replaced."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2025-12-25", "2026-03-10", freq="D")
    frame = pd.DataFrame(
        {"day": days, "x": rng.normal(size=len(days)), "colour": "red", "y": np.resize([0, 1], len(days))}
    )
    frame[name] = pd.Series(values * len(days))[: len(days)] if len(values) < len(days) else values
    path = tmp_path / f"frame.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    return path


def bad_data_message(tmp_path: Path, path: Path, fmt: str = "parquet") -> str:
    raw = spec_dict(path)
    raw["data"]["features"][0]["format"] = fmt
    code, out = run_trainer(tmp_path, raw)
    assert code == EXIT_BAD_DATA, (tmp_path / "log.txt").read_text()
    error = json.loads((out / "error.json").read_text())
    assert error["kind"] == "bad_data"
    return error["message"]


def test_an_infinite_feature_is_bad_data_naming_the_column_and_rows(tmp_path):
    values = [1.0] * 10 + [np.inf, -np.inf] + [2.0] * 64
    message = bad_data_message(tmp_path, frame_with(tmp_path, "x", values))
    # 2 of the 59 rows inside the date range (2026-01-01 to 2026-03-01) hold them
    assert message == ("column 'x' holds infinite values in 2 of 59 rows; fix them at the source or filter them out")


def test_an_infinite_label_is_bad_data(tmp_path):
    values = [0.0, 1.0] * 20 + [np.inf] + [1.0] * 35
    raw_path = frame_with(tmp_path, "y", values)
    assert "column 'y' holds infinite values in 1 of 59 rows" in bad_data_message(tmp_path, raw_path)


def test_a_label_empty_in_every_row_is_bad_data_not_an_empty_filter(tmp_path):
    message = bad_data_message(tmp_path, frame_with(tmp_path, "y", [None] * 76))
    assert message == "the label 'y' is empty (null) in all 59 rows left after the date range and filters"


def test_text_among_numbers_in_a_csv_column_is_bad_data(tmp_path):
    values = [str(v) for v in np.linspace(1, 2, 76)]
    values[40], values[41], values[50] = "unknown", "1,5", "unknown"
    message = bad_data_message(tmp_path, frame_with(tmp_path, "x", values, fmt="csv"), fmt="csv")
    assert message == (
        "column 'x' holds text in 3 of 59 rows (first: 'unknown') where its other rows hold numbers; "
        "fix them at the source or filter them out"
    )


def test_a_text_column_of_categories_is_not_taken_for_broken_numbers(tmp_path):
    frame = frame_with(tmp_path, "colour", ["red", "green", "3", "blue"])
    code, _ = run_trainer(tmp_path, spec_dict(frame))
    assert code == 0, (tmp_path / "log.txt").read_text()
