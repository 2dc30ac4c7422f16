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
  combination over the whole holdout (`routed_from_scores`: the same from the runs' holdout scores).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from railyard_trainer.comparison import Outputs, metric, paired_bootstrap, truth_of
from railyard_trainer.errors import BadDataError
from railyard_trainer.evaluation import plain
from railyard_trainer.vocabulary import BINARY, MULTICLASS, REGRESSION, ROW_ID, Winner, higher_is_better


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
    generic: Outputs | None,
    seed: int,
    confidence: float = 0.95,
    min_improvement: float = 0.0,
) -> dict:
    """The segment's item: its model (`own`, None when too small to train) against the generic model on
    the segment's holdout rows. The segment wins only when the interval's lower bound clears
    `min_improvement`; with no generic model (`include_generic: false`) a trained segment serves itself."""
    generic_score = None if generic is None else _score(name, task, truth, generic)
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
        "winner": Winner.GENERIC.value,
    }
    if own is None:
        return item
    if generic is None:
        item["winner"] = Winner.SEGMENT.value
    if len(truth) == 0:
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
        item["winner"] = Winner.SEGMENT.value
    return item


def _score(name: str, task: str, truth: np.ndarray, out: Outputs) -> float | None:
    value = metric(name, task, truth, out) if len(truth) else float("nan")
    return None if np.isnan(value) else value


def routing(items: list[dict], generic_run: int | None) -> dict[str, int | None]:
    """Each segment value (as text, for JSON) to the run whose model should serve it."""
    return {str(item["segment"]): item["run"] if item["winner"] == Winner.SEGMENT else generic_run for item in items}


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


def outputs_from_scores(task: str, scores: pd.DataFrame, threshold: float) -> Outputs:
    """A model's outputs as its `holdout_scores.parquet` holds them (a binary model's `score`, else its
    `prediction`, and a multiclass model's `score_<class>` columns)."""
    if task == BINARY and "score" in scores:
        score = scores["score"].to_numpy(dtype=float)
        return Outputs((score >= threshold).astype(int), score=score)
    if task == BINARY:
        return Outputs(scores["prediction"].to_numpy())
    if task == REGRESSION:
        return Outputs(scores["prediction"].to_numpy(dtype=float))
    columns = [c for c in scores.columns if c.startswith("score_")]
    classes = [c.removeprefix("score_") for c in columns]
    proba = scores[columns].to_numpy(dtype=float) if columns else None
    return Outputs(scores["prediction"].astype(str).to_numpy(), proba=proba, classes=classes or None)


def routed_from_scores(
    name: str, task: str, generic: pd.DataFrame | None, winners: list[pd.DataFrame], positive: Any, threshold: float
) -> float:
    """The metric of the routed combination over the whole holdout, from the holdout scores: the generic
    model's rows, each winning segment's rows replaced by its own model's (matched by `row_id`). With no
    generic model, over the rows of the segments that have a model of their own."""
    if generic is None:
        if not winners:
            return math.nan
        generic, winners = pd.concat(winners, ignore_index=True), []
    combined = generic.set_index(ROW_ID)
    for scores in winners:
        own = scores.set_index(ROW_ID)
        shared = [c for c in combined.columns if c in own.columns and c != "label"]
        combined.loc[own.index, shared] = own[shared].to_numpy()
    if task == MULTICLASS and any(set(w.columns) != set(generic.columns) for w in winners):
        combined = combined.drop(columns=[c for c in combined.columns if c.startswith("score_")])
    truth = truth_of(task, combined["label"].to_numpy(), positive)
    if task == BINARY and "prediction" in combined and "score" not in combined:
        combined["prediction"] = (combined["prediction"].to_numpy() == positive).astype(int)
    if task == MULTICLASS:
        truth = truth.astype(str)
    return metric(name, task, truth, outputs_from_scores(task, combined, threshold))
