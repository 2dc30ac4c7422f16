"""Compositions of trained runs, their pure core: when members may be composed, and how their scores combine.

- `training_windows`: the dates a run trained on, from its spec (its date range up to a date-range
  holdout; all of it with a random holdout; None when no date range bounds it).
- `problems`: why members cannot be composed for a holdout — another label or task, or training rows
  inside the composition's holdout (leakage) — each naming the member.
- `composite`: the members as one scikit-learn estimator, trained no further — a soft-voting ensemble
  (`mean`, `weighted`) or a stacking layer fitted on the composition's own training rows (`stacking`,
  scikit-learn's `StackingClassifier` with `cv="prefit"`); `stack_weights` shows what the layer gave
  each member; `routed` answers each row with the model its segment routes to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression

from railyard_trainer.errors import BadDataError
from railyard_trainer.vocabulary import DATE_RANGE, REGRESSION

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
    # A date-range holdout trains on the rows before it, never on those after (`holdout.split_by_date_range`).
    held_start = date.fromisoformat(holdout["date_range"]["start"])
    return [(start, min(held_start, end))] if start < held_start else []


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


def composite(
    method: str,
    task: str,
    members: Sequence[tuple[str, Any]],
    rows: tuple[pd.DataFrame, pd.Series],
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Any:
    """The members as one scikit-learn estimator, none of them trained again: `mean` and `weighted` a
    soft-voting ensemble, `stacking` a `Stacking…` layer fitted (`cv="prefit"`) on `rows` — the
    composition's own training rows. A voting ensemble fits only its label encoder on `rows`."""
    X, y = rows
    frozen = [(name, FrozenEstimator(model)) for name, model in members]
    if method in ("mean", "weighted"):
        chosen = list(weights) if method == "weighted" else None
        if task == REGRESSION:
            return VotingRegressor(frozen, weights=chosen).fit(X, y)
        return VotingClassifier(frozen, voting="soft", weights=chosen).fit(X, y)
    if method == "stacking":
        if len(X) == 0:
            raise BadDataError("stacking fits its layer on the composition's training rows, and there are none")
        if task == REGRESSION:
            return StackingRegressor(list(members), final_estimator=LinearRegression(), cv="prefit").fit(X, y)
        layer = LogisticRegression(random_state=seed, max_iter=1000)
        return StackingClassifier(list(members), final_estimator=layer, cv="prefit").fit(X, y)
    raise ValueError(f"{method!r} is not a combination of members alone")


def stack_weights(stacked: Any, members: Sequence[int]) -> dict[str, Any]:
    """What a stacking layer gives each member (for a binary model, its weight on that member's
    probability of the positive class), by run id, with its intercept."""
    coef = np.atleast_2d(stacked.final_estimator_.coef_)
    intercept = np.atleast_1d(stacked.final_estimator_.intercept_)
    if coef.shape[1] == len(members):
        shown: dict[str, Any] = {str(run): float(w) for run, w in zip(members, coef[0], strict=True)}
        return {**shown, "intercept": float(intercept[0])}
    # Multiclass: one column per member and class; the layer's row for each class.
    return {"coefficients": coef.round(6).tolist(), "intercept": intercept.round(6).tolist()}


class _Routed(BaseEstimator):
    """Each row answered by the model its segment value routes to, the generic model elsewhere.

    Loading it needs `railyard-trainer` installed beside scikit-learn (the only model Railyard writes
    that does)."""

    def __init__(self, column: str, generic: Any, routes: dict[str, Any]):
        self.column, self.generic, self.routes = column, generic, routes

    def fit(self, X: pd.DataFrame, y: Any = None) -> _Routed:
        return self  # its models are trained already

    def _routed_rows(self, X: pd.DataFrame) -> Iterator[tuple[Any, np.ndarray]]:
        keys = X[self.column].astype(str).to_numpy()
        for value in np.unique(keys):
            model = self.routes.get(value)
            if model is not None:
                yield model, keys == value


class RoutedClassifier(ClassifierMixin, _Routed):
    @property
    def classes_(self) -> np.ndarray:
        return self.generic.classes_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self.generic.predict_proba(X), dtype=float).copy()
        where = {c: i for i, c in enumerate(self.classes_)}
        for model, rows in self._routed_rows(X):
            part = model.predict_proba(X.loc[rows])
            block = np.zeros((int(rows.sum()), out.shape[1]))
            for j, c in enumerate(model.classes_):
                block[:, where[c]] = part[:, j]
            out[rows] = block
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class RoutedRegressor(RegressorMixin, _Routed):
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self.generic.predict(X), dtype=float).copy()
        for model, rows in self._routed_rows(X):
            out[rows] = model.predict(X.loc[rows])
        return out


def routed(task: str, column: str, generic: Any, routes: dict[str, Any]) -> _Routed:
    """A segmented request's routing as one estimator (`routed` compositions)."""
    return (RoutedRegressor if task == REGRESSION else RoutedClassifier)(column, generic, routes)
