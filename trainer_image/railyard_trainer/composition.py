"""Compositions of trained runs, their pure core: when members may be composed, and how their scores combine.

- `training_windows`: the dates a run trained on, from its spec (its date range less a date-range
  holdout; all of it with a random holdout; None when no date range bounds it).
- `problems`: why members cannot be composed for a holdout — another label or task, or training rows
  inside the composition's holdout (leakage) — each naming the member.
- `combine`: `mean` or `weighted` scores (binary probabilities, regression predictions, or multiclass
  probability matrices); `stack` fits scikit-learn's logistic layer on the members' scores over the
  composition's own training rows, and `stack_weights` shows what it gave each member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
from sklearn.linear_model import LogisticRegression

from railyard_trainer.vocabulary import DATE_RANGE

METHODS = ("mean", "weighted", "routed", "stacking")
Window = tuple[date, date]


def training_windows(spec: Mapping) -> list[Window] | None:
    """The half-open date intervals a run's training rows came from; None when unbounded."""
    data = spec.get("data") or {}
    span = data.get("date_range")
    if not span:
        return None
    start, end = date.fromisoformat(span["start"]), date.fromisoformat(span["end"])
    holdout = data.get("holdout_sampling") or {}
    if holdout.get("sampling_function") != DATE_RANGE or not holdout.get("date_range"):
        return [(start, end)]
    held_start = date.fromisoformat(holdout["date_range"]["start"])
    held_end = date.fromisoformat(holdout["date_range"]["end"])
    return [(a, b) for a, b in ((start, held_start), (held_end, end)) if a < b]


def problems(members: Mapping[int, Mapping], holdout: Window) -> dict[str, list[str]]:
    """Errors by `compose.members[i]`: a member of another label or task than the first, or whose
    training rows fall inside the composition's holdout. `members` maps run ids (in the request's order)
    to `{"label", "task", "spec"}`."""
    errors: dict[str, list[str]] = {}
    first = next(iter(members.values()), None)
    held_start, held_end = holdout
    for index, (run, member) in enumerate(members.items()):
        path = f"compose.members[{index}]"
        if first is not None and member["label"] != first["label"]:
            errors.setdefault(path, []).append(
                f"Run {run} predicts {member['label']!r}, the first member {first['label']!r}; members share a label."
            )
        if first is not None and member["task"] != first["task"]:
            errors.setdefault(path, []).append(
                f"Run {run} is a {member['task']} model, the first member a {first['task']} one."
            )
        windows = training_windows(member["spec"])
        if windows is None:
            errors.setdefault(path, []).append(
                f"Run {run} trained on rows no date range bounds, so they may lie inside the holdout."
            )
            continue
        for start, end in windows:
            if start < held_end and held_start < end:
                errors.setdefault(path, []).append(
                    f"Run {run} trained on {start} … {end}, which overlaps the holdout {held_start} … {held_end} "
                    "(its scores there would be on rows it learned from)."
                )
    return errors


def combine(method: str, scores: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The members' scores combined row by row: their mean, or their weighted mean (weights normalised)."""
    stacked = np.stack([np.asarray(score, dtype=float) for score in scores])
    if method == "mean":
        return stacked.mean(axis=0)
    if method == "weighted":
        w = np.asarray(weights, dtype=float)
        return np.tensordot(w / w.sum(), stacked, axes=1)
    raise ValueError(f"{method!r} does not combine scores by rows alone")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def stack(member_scores: Sequence[np.ndarray], truth: np.ndarray, seed: int = 0) -> LogisticRegression:
    """A logistic layer over the members' binary scores (as log-odds), fitted on the composition's training rows."""
    features = np.column_stack([_logit(np.asarray(s, dtype=float)) for s in member_scores])
    return LogisticRegression(random_state=seed).fit(features, truth)


def stacked_scores(layer: LogisticRegression, member_scores: Sequence[np.ndarray]) -> np.ndarray:
    features = np.column_stack([_logit(np.asarray(s, dtype=float)) for s in member_scores])
    return layer.predict_proba(features)[:, 1]


def stack_weights(layer: LogisticRegression, members: Sequence[int]) -> dict[str, float]:
    """What the layer gives each member's log-odds, by run id, and its intercept."""
    shown = {str(run): float(weight) for run, weight in zip(members, layer.coef_[0], strict=True)}
    return {**shown, "intercept": float(layer.intercept_[0])}
