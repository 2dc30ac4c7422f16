"""Per-segment models beside a generic one: which segments get a model, how they are packed into jobs,
and whether each segment's model beats the generic model on that segment's own holdout rows.

Pure functions over counts and scores (the trainer's side of `train.segment_by`):

- `plan`: the segment values with at least `min_rows` training rows, and those too small; more than
  `max_segments` is bad data naming the count.
- `pack`: segments packed by row count into at most `jobs` groups (largest first, each to the
  lightest group), so that jobs take about as long as each other.
- `versus_generic`: one segment's item — both scores on its holdout rows, their difference with a
  paired bootstrap interval (`railyard_trainer.comparison`), and the winner.
- `routing` and `routed_score`: which model serves each segment value, and the metric of that routed
  combination over the whole holdout.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from railyard_trainer.comparison import Outputs, metric, paired_bootstrap
from railyard_trainer.errors import BadDataError
from railyard_trainer.evaluation import plain
from railyard_trainer.vocabulary import higher_is_better

SEGMENT, GENERIC = "segment", "generic"


def plan(train_rows: Mapping[Hashable, int], min_rows: int, max_segments: int) -> tuple[list, list]:
    """(segments to train, largest first; segments too small to train); BadDataError past `max_segments`."""
    trained = sorted((value for value, rows in train_rows.items() if rows >= min_rows), key=lambda v: -train_rows[v])
    if len(trained) > max_segments:
        raise BadDataError(
            f"train.segment_by: {len(trained)} segments have at least {min_rows} training rows, more than "
            f"max_segments ({max_segments}); raise max_segments or min_rows"
        )
    small = [value for value, rows in train_rows.items() if rows < min_rows]
    return trained, small


def pack(rows: Mapping[Hashable, int], jobs: int) -> list[list]:
    """The segments in at most `jobs` groups of about equal rows (largest first, each to the lightest group)."""
    groups: list[list] = [[] for _ in range(max(1, min(jobs, len(rows))))]
    lightest = [(0, index) for index in range(len(groups))]
    for value in sorted(rows, key=lambda v: (-rows[v], str(v))):
        load, index = heapq.heappop(lightest)
        groups[index].append(value)
        heapq.heappush(lightest, (load + rows[value], index))
    return [group for group in groups if group]


def versus_generic(
    segment: Any,
    run: int | None,
    train_rows: int,
    name: str,
    task: str,
    truth: np.ndarray,
    own: Outputs | None,
    generic: Outputs,
    seed: int,
    confidence: float = 0.95,
    min_improvement: float = 0.0,
) -> dict:
    """The segment's item: its model (`own`, None when too small to train) against the generic model on
    the segment's holdout rows. The segment wins only when the interval's lower bound clears `min_improvement`."""
    generic_score = _score(name, task, truth, generic)
    item = {
        "segment": plain(segment),
        "run": run,
        "train_rows": int(train_rows),
        "holdout_rows": len(truth),
        "metric": name,
        "segment_score": None,
        "generic_score": generic_score,
        "difference": None,
        "interval": None,
        "winner": GENERIC,
    }
    if own is None or len(truth) == 0:
        return item
    own_score = _score(name, task, truth, own)
    item["segment_score"] = own_score
    if own_score is None or generic_score is None:
        return item
    sign = 1.0 if higher_is_better(name) else -1.0
    item["difference"] = sign * (own_score - generic_score)
    try:
        low, high, _ = paired_bootstrap(name, task, truth, generic, own, seed, confidence)
    except Exception:  # noqa: BLE001 - a metric undefined on every resample of a small segment: no winner claimed
        return item
    item["interval"] = {"low": low, "high": high, "confidence": confidence}
    if low > min_improvement:
        item["winner"] = SEGMENT
    return item


def _score(name: str, task: str, truth: np.ndarray, out: Outputs) -> float | None:
    value = metric(name, task, truth, out) if len(truth) else float("nan")
    return None if np.isnan(value) else value


def routing(items: list[dict], generic_run: int | None) -> dict[str, int | None]:
    """Each segment value (as text, for JSON) to the run whose model should serve it."""
    return {str(item["segment"]): item["run"] if item["winner"] == SEGMENT else generic_run for item in items}


def routed_score(
    name: str,
    task: str,
    truth: np.ndarray,
    segments: np.ndarray,
    generic: Outputs,
    own: Mapping[Any, Outputs],
    winners: set,
) -> float:
    """The metric over the whole holdout when each row is scored by its segment's model where that
    segment won, and by the generic model elsewhere (`own[v]` holds the rows of segment `v`, in order)."""
    combined = Outputs(
        generic.predicted.copy(),
        None if generic.score is None else generic.score.copy(),
        None if generic.proba is None else generic.proba.copy(),
        generic.classes,
    )
    for value in winners:
        rows = segments == value
        part = own[value]
        combined.predicted[rows] = part.predicted
        if combined.score is not None and part.score is not None:
            combined.score[rows] = part.score
        if combined.proba is not None and part.proba is not None:
            combined.proba[rows] = part.proba
    return metric(name, task, truth, combined)
