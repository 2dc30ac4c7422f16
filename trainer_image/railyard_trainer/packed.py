"""One job, many runs: the runs of a segmented request (`train.segment_by`) trained in one trainer process.

A packed job's spec, what `train --spec` is given instead of one run's:

    {"spec": <the segmented request's spec>,
     "plan": <the request's own folder> | null,
     "generic": <the generic model's folder, to compare segment models with> | null,
     "runs": [{"run_id": "8", "out": <its folder>, "segment": {"value": "m_17"} | null}, …]}

- The rows are loaded, filtered and split once (the random holdout drawn within each segment), then
  each run trains on its segment's rows — the generic model on every row — and writes its artifacts
  and its own log into its own folder, the manifest last.
- With `plan` the job plans the request first: which segment values have enough training rows
  (`segments.plan`) and how they pack into jobs by rows (`segments.pack`). The generic model trains in
  that job, so that the later jobs compare each segment model with it; the plan's `small` items are
  the segments too small to train, scored by the generic model alone. → `plan.json` in the request's folder.
- A segment's run compares its model with the generic model on the segment's own holdout rows →
  `segment.json` (`segments.versus_generic`).
- A run that cannot train (its rows hold one label value, its own crash) leaves error.json in its
  folder, and the job goes on with the next; what stops the whole job (the data cannot be read, memory,
  the store) leaves error.json in the folder of every run it had not finished.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from railyard_trainer import segments, train
from railyard_trainer import vocabulary as v
from railyard_trainer.comparison import Outputs, load_champion, outputs, subset, truth_of
from railyard_trainer.errors import BadDataError, failure, write_error
from railyard_trainer.evaluation import REGRESSION, plain
from railyard_trainer.spec import TrainSpec, segment_spec
from railyard_trainer.stages import StoredLog, log
from railyard_trainer.storage import ArtifactStore, StoreError, open_store


def run_job(raw: dict, store: ArtifactStore) -> None:
    """Train a packed job's runs (and plan the request first when asked); see the module's docstring."""
    request_spec = raw["spec"]
    unfinished = {str(entry["run_id"]): entry["out"] for entry in raw["runs"]}
    if raw.get("plan"):
        unfinished["plan"] = raw["plan"]
    try:
        spec, workflow_cls = train.checked(request_spec)
        if not spec.segment_by:
            raise BadDataError("a packed job's spec needs train.segment_by")
        _run(raw, spec, workflow_cls, unfinished)
    except Exception as exc:
        kind, _, message = failure(exc)
        for key, uri in unfinished.items():
            log(f"{'the plan' if key == 'plan' else f'run {key}'} not finished: {message}")
            write_error(open_store(uri), kind, message)
        raise


def _run(raw: dict, spec: TrainSpec, workflow_cls: type, unfinished: dict[str, str]) -> None:
    column = spec.segment_by["column"]
    prepared = train.prepare(spec, {})
    shared = dict(prepared.timings)  # each run's stage seconds: the shared load, filter and split, then its own
    _check_column(prepared.frame[column], column)
    task, positive = train.task_of(workflow_cls, spec, prepared.training)
    name = v.PRIMARY_METRIC[task]
    plan = _plan(spec, prepared, task) if raw.get("plan") else None
    generic_uri = raw.get("generic")
    generic_model = load_champion(generic_uri)[0] if generic_uri else None
    # The generic model first: the plan's small segments and every segment model are scored against it.
    entries = sorted(raw["runs"], key=lambda entry: entry.get("segment") is not None)
    for entry in entries:
        run_id, segment = str(entry["run_id"]), (entry.get("segment") or {}).get("value")
        store = open_store(entry["out"])
        run_raw = segment_spec(raw["spec"], run_id, segment)
        with StoredLog(store).capturing():
            log(f"run {run_id}: " + (f"segment {column}={segment!r}" if segment is not None else "the generic model"))
            try:
                written = train.begin(run_raw, store)
                part = prepared if segment is None else prepared.only(column, segment)
                part = dataclasses.replace(part, timings=dict(shared))
                versus = None
                if segment is not None:
                    versus = _versus(
                        spec, task, positive, name, segment, int(run_id), len(part.training), generic_model
                    )
                own_spec = TrainSpec.from_dict(run_raw)  # its own run id and segment, in its metadata
                learn = train.learner(workflow_cls, own_spec)
                fitted = train.fit(own_spec, learn, part, store, written, task, positive, versus)
            except (MemoryError, StoreError):
                raise
            except Exception as exc:  # noqa: BLE001 - one run's failure is its own; the job goes on
                kind, _, message = failure(exc)
                log(f"error kind={kind}: {message}")
                write_error(store, kind, message)
                unfinished.pop(run_id)
                continue
        unfinished.pop(run_id)
        if segment is None:
            generic_model = fitted.estimator
    if plan is not None:
        plan["small"] = _small_items(spec, prepared, task, positive, name, plan.pop("untrained"), generic_model)
        open_store(raw["plan"]).put(v.PLAN, json.dumps(plan, indent=2, default=str).encode(), "application/json")
        unfinished.pop("plan")
        trained, jobs, small = len(plan["segments"]), len(plan["groups"]), len(plan["small"])
        log(f"plan: {trained} segment model(s) in {jobs} job(s); {small} segment(s) served by the generic model")


def _check_column(values: pd.Series, column: str) -> None:
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        raise BadDataError(
            f"train.segment_by.column: {column!r} holds {values.dtype} values; segment by a column of text, "
            "whole numbers or booleans"
        )


def _plan(spec: TrainSpec, prepared: train.Prepared, task: str) -> dict:
    """Which segment values train, largest first, packed by rows into at most `jobs` groups."""
    segment_by = spec.segment_by
    column = segment_by["column"]
    training, held = prepared.training, prepared.held
    rows = training.groupby(column, sort=False).size()
    trainable = rows
    if task != REGRESSION:  # a classifier needs two label values among its rows
        labels = training.groupby(column, sort=False)[spec.label].nunique()
        trainable = rows[labels >= 2]
    counts = {value: int(n) for value, n in trainable.items()}
    trained, _ = segments.plan(counts, segment_by["min_rows"], segment_by["max_segments"])
    held_rows = held.groupby(column, sort=False).size()
    chosen = set(trained)
    untrained = [
        value for value in pd.unique(pd.concat([training[column], held[column]]).dropna()) if value not in chosen
    ]
    groups = segments.pack({value: counts[value] for value in trained}, segment_by["jobs"] or v.DEFAULT_SEGMENT_JOBS)
    return {
        "column": column,
        "task": task,
        "metric": v.PRIMARY_METRIC[task],
        "min_rows": segment_by["min_rows"],
        "train_rows": len(training),
        "holdout_rows": len(held),
        "segments": [
            {"segment": plain(value), "train_rows": counts[value], "holdout_rows": int(held_rows.get(value, 0))}
            for value in trained
        ],
        "groups": [[plain(value) for value in group] for group in groups],
        "untrained": untrained,
    }


def _versus(
    spec: TrainSpec, task: str, positive: Any, name: str, segment: Any, run_id: int, train_rows: int, generic: Any
):
    """What a segment's run adds to its artifacts: its comparison with the generic model on its holdout rows."""

    def compared(fitted: train.Fitted, held: pd.DataFrame) -> dict[str, dict]:
        classes = list(getattr(fitted.estimator, "classes_", []))
        truth = truth_of(task, held[spec.label].to_numpy(), positive)
        X = held[spec.classifier_features]
        own = outputs(task, fitted.estimator, X, positive, spec.decision_threshold, classes)
        theirs = None if generic is None else outputs(task, generic, X, positive, spec.decision_threshold, classes)
        margin = spec.segment_by.get("min_improvement", v.DEFAULT_SEGMENT_MARGIN)
        item = segments.versus_generic(
            segment, run_id, train_rows, name, task, truth, own, theirs, spec.seed, min_improvement=margin
        )
        log(f"segment {segment!r}: {item['winner']} model wins (difference {item['difference']})")
        return {v.SEGMENT: item}

    return compared


def _small_items(
    spec: TrainSpec, prepared: train.Prepared, task: str, positive: Any, name: str, values: list, generic: Any
) -> list[dict]:
    """The items of segments that train no model of their own: the generic model's score on their rows."""
    column, held, training = spec.segment_by["column"], prepared.held, prepared.training
    if not values:
        return []
    train_rows = training.groupby(column, sort=False).size()
    places = held.groupby(column, sort=False).indices
    truth = truth_of(task, held[spec.label].to_numpy(), positive)
    every: Outputs | None = None
    if generic is not None:
        classes = list(getattr(generic, "classes_", []))
        every = outputs(task, generic, held[spec.classifier_features], positive, spec.decision_threshold, classes)
    items = []
    for value in values:
        rows = places.get(value, np.array([], dtype=int))
        theirs = None if every is None else subset(every, rows)
        item = segments.versus_generic(
            value, None, int(train_rows.get(value, 0)), name, task, truth[rows], None, theirs, spec.seed
        )
        items.append(item)
    return items
