"""Compositions: a request with `compose` in place of `train` combines finished runs without training them.

- `members`: the runs a request composes, checked against what they are — runs the caller may see that
  succeeded, predicting the same label for the same task (and positive class), trained on rows outside
  the composition's holdout (`railyard_trainer.composition.problems`); `routed` takes one segmented
  request, whose routing it follows. InvalidRequest names `compose.members[i]`.
- `complete`: the trainer's spec of a composition — its `train` (the members' label, the union of their
  features) and its `compose` (each member's artifact folder and features; a routed member's routes).
- `task_of`: the task a run's model does, from its metrics.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from railyard_trainer import vocabulary as v
from railyard_trainer.body import InvalidRequest
from railyard_trainer.composition import problems
from railyard_trainer.vocabulary import DATE_RANGE, RunKind, RunStatus
from training import access
from training.models import Run, Segment


def task_of(run: Run) -> str | None:
    """The task of a run's model (binary, multiclass, regression), from the primary metric it reports."""
    return next((task for task, name in v.PRIMARY_METRIC.items() if name in (run.metrics or {})), None)


def holdout_window(data: dict) -> tuple[date, date] | None:
    """The dates a composition's holdout rows come from: its holdout range, else its whole date range."""
    held = data.get("holdout_sampling") or {}
    span = held.get("date_range") if held.get("sampling_function") == DATE_RANGE else data.get("date_range")
    return (date.fromisoformat(span["start"]), date.fromisoformat(span["end"])) if span else None


def members(owner: AbstractBaseUser | None, clean: dict) -> list[Run]:
    """The composed runs in the request's order, checked; InvalidRequest naming each problem."""
    compose = clean["compose"]
    ids = compose["members"]
    visible = access.runs_for(owner) if owner is not None else Run.objects.all()
    found = {run.pk: run for run in visible.filter(pk__in=ids)}
    errors: dict[str, list[str]] = {}
    for index, pk in enumerate(ids):
        path, run = f"compose.members[{index}]", found.get(pk)
        if run is None:
            errors[path] = [f"No run {pk} that you may see."]
        elif run.status != RunStatus.SUCCEEDED:
            errors[path] = [f"Run {pk} is {run.status}; only succeeded runs can be composed."]
        elif compose["method"] == "routed" and run.kind != RunKind.SEGMENTED:
            errors[path] = [f"Run {pk} is not a segmented request: routed follows a segmented request's routing."]
        elif compose["method"] != "routed" and run.kind == RunKind.SEGMENTED:
            errors[path] = [f"Run {pk} is a segmented request: compose it with routed, or compose its runs."]
    window = holdout_window(clean["data"])
    if window is None:
        errors["data.date_range"] = [
            "A composition needs a date range (or a DATE_RANGE holdout) to tell its holdout from the rows its "
            "members trained on."
        ]
    if errors:
        raise InvalidRequest(errors)
    runs = [found[pk] for pk in ids]
    described = {run.pk: _described(run) for run in runs}
    errors = problems(described, window)
    loaded = {name for source in clean["data"]["features"] for name in source["names"]}
    for index, run in enumerate(runs):
        wanted = [*_features(run), described[run.pk]["label"]]
        if run.kind == RunKind.SEGMENTED:
            wanted.append(run.spec["train"]["segment_by"]["column"])
        if missing := [name for name in dict.fromkeys(wanted) if name and name not in loaded]:
            errors.setdefault(f"compose.members[{index}]", []).append(
                f"Run {run.pk} needs {', '.join(map(repr, missing))}, not among the data's features' names."
            )
    positives = {str(info["positive"]) for info in described.values() if info["positive"] is not None}
    if len(positives) > 1:
        errors.setdefault("compose.members", []).append(
            f"The members' positive classes differ ({', '.join(sorted(positives))}); they must share one."
        )
    if compose["method"] == "routed" and not runs[0].children.filter(kind=RunKind.GENERIC).exists():
        errors.setdefault("compose.members[0]", []).append(
            f"Run {runs[0].pk} has no generic model to serve the segments without a model of their own."
        )
    if errors:
        raise InvalidRequest(errors)
    return runs


def _described(run: Run) -> dict[str, Any]:
    """What `problems` needs of a member: its label, task and spec (a segmented request's generic model's)."""
    source = run.children.filter(kind=RunKind.GENERIC).first() or run if run.kind == RunKind.SEGMENTED else run
    return {
        "label": run.spec["train"]["label"] if "train" in run.spec else None,
        "task": task_of(source),
        "spec": run.spec,
        "positive": (source.data_summary or {}).get("positive_class"),
    }


def complete(spec: dict, runs: list[Run]) -> dict:
    """The trainer's spec of a composition from its resolved request (`spec`, with `compose`) and members."""
    compose = spec["compose"]
    first = runs[0].spec["train"]
    features: list[str] = []
    entries = []
    for run in runs:
        own = _features(run)
        features += [name for name in own if name not in features]
        entry: dict[str, Any] = {"run": run.pk, "uri": run.artifact_uri, "features": own}
        if run.kind == RunKind.SEGMENTED:
            entry["routing"] = _routing(run)
            column = entry["routing"]["column"]
            features += [column] if column not in features else []
        entries.append(entry)
    train = {"workflow_name": v.COMPOSITION_WORKFLOW, "classifier_features": features, "label": first["label"]}
    for name in ("positive_class", "decision_threshold"):
        if name in first:
            train[name] = first[name]
    source = runs[0].children.filter(kind=RunKind.GENERIC).first() or runs[0]
    positive = (source.data_summary or {}).get("positive_class")
    if positive is not None:
        train["positive_class"] = positive
    return {**spec, "train": train, "compose": {**compose, "members": entries}}


def _features(run: Run) -> list[str]:
    train = run.spec.get("train") or {}
    if run.kind == RunKind.COMPOSITION:
        return list(train.get("classifier_features") or [])
    return list(train["classifier_features"])


def _routing(parent: Run) -> dict:
    """A segmented request's routes: each segment value served by its own model, to that model's folder."""
    generic = parent.children.get(kind=RunKind.GENERIC)
    own = Segment.objects.filter(parent=parent, winner=v.Winner.SEGMENT).select_related("run")
    return {
        "column": parent.spec["train"]["segment_by"]["column"],
        "generic": generic.artifact_uri,
        "routes": {segment.name: segment.run.artifact_uri for segment in own if segment.run_id},
    }
