"""A composition's run: trained runs combined into one model, evaluated like any run, trained no further.

Its spec is a run's (the request's `data`; a `train` the service completed: the members' label, the
union of their features) plus `compose`: the method, a weighted mean's weights, and each member's
artifact folder and features (a `routed` member: its segment column, generic model and routes). The
rows are loaded, filtered and split as for any run; the members' fitted models are loaded from their
folders and combined (`composition.composite`, `composition.routed`) — a stacking layer fitted on the
composition's own training rows — then evaluated on the holdout, compared with a model's champion
when it retrains one, and written as any run's artifacts, with `composition.json`: each member's own
score on this holdout beside the composition's, and a stacking layer's weights.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from railyard_trainer import composition, train
from railyard_trainer import vocabulary as v
from railyard_trainer.comparison import CannotCompare, load_champion, metric, outputs, truth_of
from railyard_trainer.errors import BadDataError
from railyard_trainer.spec import TrainSpec
from railyard_trainer.stages import log
from railyard_trainer.storage import ArtifactStore


def run(raw: dict, store: ArtifactStore) -> dict[str, Any]:
    """Combine, evaluate and store a composition; returns its metrics."""
    written = train.begin(raw, store)
    spec = TrainSpec.from_dict(raw)
    compose = raw.get("compose") or {}
    method, entries = compose.get("method"), compose.get("members") or []
    if method not in v.COMPOSE_METHODS or not entries:
        raise BadDataError("the spec is malformed: compose needs a method and its members' folders")
    prepared = train.prepare(spec, {})
    # A routed member is a segmented request: its generic model stands for it (its routes load later).
    members = [(entry, *load_champion(entry.get("routing", {}).get("generic") or entry["uri"])) for entry in entries]
    tasks = {metadata.get("task") for _, _, metadata in members}
    if len(tasks) != 1:
        raise BadDataError(f"the members' models do not share a task: {', '.join(sorted(map(str, tasks)))}")
    task = tasks.pop()
    positive = spec.positive_class if task == v.BINARY else None
    log(f"composing {len(members)} run(s) by {method}: " + ", ".join(f"run {entry['run']}" for entry, _, _ in members))

    def learn(training: pd.DataFrame, held: pd.DataFrame) -> Any:
        if method == "routed":
            routing = entries[0]["routing"]
            routes = {value: load_champion(uri)[0] for value, uri in routing["routes"].items()}
            return composition.routed(task, routing["column"], members[0][1], routes)
        rows = training if method == "stacking" or len(training) else held
        named = [(f"run_{entry['run']}", model) for entry, model, _ in members]
        X, y = rows[spec.classifier_features], rows[spec.label]
        return composition.composite(method, task, named, (X, y), compose.get("weights"), spec.seed)

    def described(fitted: train.Fitted, held: pd.DataFrame) -> dict[str, dict]:
        name = v.PRIMARY_METRIC[task]
        truth = truth_of(task, held[spec.label].to_numpy(), positive)
        classes = list(getattr(fitted.estimator, "classes_", []))

        def _score(task: str, model: Any, X: pd.DataFrame) -> float | None:
            """A model's own primary metric on these holdout rows (None where it cannot say)."""
            try:
                value = metric(name, task, truth, outputs(task, model, X, positive, spec.decision_threshold, classes))
            except CannotCompare:
                return None
            return None if value != value else float(value)  # NaN: undefined on these rows

        scored = []
        for entry, model, _ in members:
            # A routed member (a segmented request) is its routing: the composition itself.
            score = fitted.metrics.get(name) if method == "routed" else _score(task, model, held[entry["features"]])
            scored.append({"run": entry["run"], "score": score})
        summary: dict[str, Any] = {
            "method": method,
            "weights": compose.get("weights"),
            "metric": name,
            "score": fitted.metrics.get(name),
            "members": scored,
        }
        if method == "routed":
            summary["generic_score"] = _score(task, fitted.estimator.generic, held[spec.classifier_features])
            summary["routed_segments"] = len(entries[0]["routing"]["routes"])
        if method == "stacking":
            summary["stacking"] = composition.stack_weights(fitted.estimator, [e["run"] for e, _, _ in members])
        return {v.COMPOSITION: summary}

    return train.fit(spec, learn, prepared, store, written, task, positive, described).metrics
