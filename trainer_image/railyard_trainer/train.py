"""The training run: load, filter, split, train, evaluate, serialize — and write every artifact."""

from __future__ import annotations

import io
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.utils._param_validation import InvalidParameterError

from railyard_trainer import data, holdout, parameters
from railyard_trainer import vocabulary as v
from railyard_trainer.comparison import Challenger, compare
from railyard_trainer.errors import BadDataError
from railyard_trainer.evaluation import BINARY, evaluate, plain, positive_class, resolve_task
from railyard_trainer.spec import TrainSpec
from railyard_trainer.stages import log, stage
from railyard_trainer.storage import ArtifactStore, StoredArtifact
from railyard_trainer.workflows import get_workflow

LIBRARIES = ("railyard-trainer", "scikit-learn", "pandas", "numpy", "pyarrow", "joblib")
#: Where each row's position in the first source rides along through filters and the split.
POSITION = "__railyard_row_position__"


@dataclass
class Prepared:
    """The rows a run trains and is evaluated on: loaded, filtered and split once (a packed job's runs
    share them)."""

    frame: pd.DataFrame  # the filtered rows, each with its POSITION
    training: pd.DataFrame
    held: pd.DataFrame
    loaded_rows: int
    sources: list[dict]
    timings: dict[str, float]

    def only(self, column: str, value: Any) -> Prepared:
        """The rows of one segment value (BadDataError when it has no training rows)."""
        parts = [part.loc[part[column] == value].reset_index(drop=True) for part in (self.training, self.held)]
        if parts[0].empty:
            raise BadDataError(f"segment {column}={value!r} has no training rows")
        frame = self.frame.loc[self.frame[column] == value]
        return Prepared(frame, parts[0], parts[1], self.loaded_rows, self.sources, dict(self.timings))


@dataclass
class Fitted:
    """A run's fitted model with what it was evaluated on."""

    estimator: Any
    metrics: dict[str, float]
    task: str
    positive: Any


def checked(raw_spec: dict) -> tuple[TrainSpec, type]:
    """The spec's values and its workflow; BadDataError naming what is wrong with either."""
    spec = TrainSpec.from_dict(raw_spec)
    workflow_cls = get_workflow(spec.workflow_name)
    if bad := parameters.problems(spec.workflow_name, workflow_cls.declared_parameters(), spec.custom_params):
        raise BadDataError("the spec is malformed: " + "; ".join(f"{path}: {why}" for path, why in bad.items()))
    return spec, workflow_cls


def prepare(spec: TrainSpec, timings: dict[str, float]) -> Prepared:
    """Load, filter and split the spec's rows."""
    needed = [*spec.classifier_features, spec.label]
    with stage("load", timings=timings) as details:
        sources_read: list[dict] = []
        frame = data.load(spec, sources_read)
        frame[POSITION] = np.arange(len(frame))
        wanted = [*needed, *filter(None, [spec.id_column, (spec.segment_by or {}).get("column")])]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise BadDataError(f"column(s) {', '.join(missing)} are not in any feature source")
        details["rows"] = len(frame)
    loaded_rows = len(frame)

    with stage("filter", timings=timings) as details:
        frame = data.restrict(frame, spec)
        data.check_values(frame, needed)
        details["rows"] = len(frame)

    with stage("split", timings=timings) as details:
        training, held = holdout.split(frame, spec)
        details.update(train_rows=len(training), holdout_rows=len(held))
    return Prepared(frame, training, held, loaded_rows, sources_read, timings)


def task_of(workflow_cls: type, spec: TrainSpec, training: pd.DataFrame) -> tuple[str, Any]:
    """The task the label makes of the workflow, and the positive class of a binary one."""
    task = resolve_task(workflow_cls.task, training[spec.label])
    return task, positive_class(training[spec.label], spec.positive_class) if task == BINARY else None


def begin(raw_spec: dict, store: ArtifactStore) -> list[StoredArtifact]:
    """Start a run's folder: what an earlier attempt concluded removed (a requeued run writes to the
    same place), and the spec written first, so that it is kept whatever happens next."""
    for stale in (v.MANIFEST, v.ERROR):
        store.delete(stale)
    return [store.put(v.SPEC, _json(raw_spec), "application/json")]


def run(raw_spec: dict, store: ArtifactStore) -> dict[str, Any]:
    """Train the spec's workflow and write its artifacts; returns the metrics."""
    written = begin(raw_spec, store)
    spec, workflow_cls = checked(raw_spec)
    prepared = prepare(spec, {})
    if spec.segment is not None:
        prepared = prepared.only(spec.segment_by["column"], spec.segment)
    task, positive = task_of(workflow_cls, spec, prepared.training)
    return fit(spec, learner(workflow_cls, spec), prepared, store, written, task, positive).metrics


def learner(workflow_cls: type, spec: TrainSpec) -> Callable[[pd.DataFrame, pd.DataFrame], Any]:
    """The spec's workflow, as what `fit` calls to get a fitted estimator from training and holdout rows."""

    def learn(training: pd.DataFrame, held: pd.DataFrame) -> Any:
        workflow = workflow_cls(spec.classifier_features, spec.label, spec.custom_params, spec.seed)
        return workflow.train(training, held)

    return learn


def fit(
    spec: TrainSpec,
    learn: Callable[[pd.DataFrame, pd.DataFrame], Any],
    prepared: Prepared,
    store: ArtifactStore,
    written: list[StoredArtifact],
    task: str,
    positive: Any,
    also: Callable[[Fitted, pd.DataFrame], dict[str, dict]] | None = None,
) -> Fitted:
    """Train, evaluate (and compare) one run on prepared rows and write its artifacts after those
    `begin` wrote, the manifest last; `also` adds JSON artifacts made from the fitted model and its
    holdout rows."""
    needed = [*spec.classifier_features, spec.label]
    timings, frame, training, held = prepared.timings, prepared.frame, prepared.training, prepared.held
    with stage("train", timings=timings) as details:
        try:
            estimator = learn(training, held)
        except InvalidParameterError as exc:
            raise BadDataError(f"custom_params: {exc}") from exc
        details["estimator"] = type(estimator).__name__

    with stage("evaluate", timings=timings) as details:
        result = evaluate(
            task,
            estimator,
            held[spec.classifier_features],
            held[spec.label],
            spec.seed,
            positive=positive,
            threshold=spec.decision_threshold,
        )
        details.update({k: f"{v:.4f}" for k, v in result.metrics.items()})
        for note in result.notes:
            log(f"evaluation: {note}")
    fitted = Fitted(estimator, result.metrics, task, positive)

    comparison = None
    if spec.challenge:
        with stage("compare", timings=timings) as details:
            challenger = Challenger(
                task,
                estimator,
                held.drop(columns=POSITION),
                spec.label,
                spec.classifier_features,
                positive,
                spec.decision_threshold,
                spec.seed,
            )
            comparison = compare(spec.challenge, challenger)
            details.update(champion=f"run {comparison['champion_run']}", decision=comparison["decision"])
            log(f"comparison with the champion: {comparison['decision']}: {comparison['reason']}")
    extra = also(fitted, held) if also else {}

    with stage("serialize"):
        scores = result.scores
        if spec.date_column:
            scores.insert(0, spec.date_column, held[spec.date_column].to_numpy())
        scores.insert(0, v.ROW_ID, held[spec.id_column or POSITION].to_numpy())
        summary = data_summary(spec, prepared.loaded_rows, frame.drop(columns=POSITION), training, held, task, positive)
        summary["stage_seconds"] = timings
        summary["sources"] = prepared.sources
        metadata = {
            "run_id": spec.run_id,
            "workflow": spec.workflow_name,
            "task": task,
            "classifier_features": spec.classifier_features,
            "label": spec.label,
            "classes": [plain(c) for c in getattr(estimator, "classes_", [])],
            "custom_params": spec.custom_params,
            "seed": spec.seed,
            "data_fingerprint": data.fingerprint(frame[needed]),
            "data_summary": summary,
            "libraries": library_versions(),
        }
        if spec.segment_by:
            metadata["segment"] = {"column": spec.segment_by["column"], "value": plain(spec.segment)}
        model = io.BytesIO()
        joblib.dump(estimator, model)
        written += [
            store.put(v.MODEL, model.getvalue(), "application/octet-stream"),
            store.put(v.METADATA, _json(metadata), "application/json"),
            store.put(v.METRICS_FILE, _json(result.metrics), "application/json"),
            store.put(
                v.EVALUATION,
                _json({"task": task, "charts": result.charts, "notes": result.notes}),
                "application/json",
            ),
            store.put(v.HOLDOUT_SCORES, _parquet(scores), "application/vnd.apache.parquet"),
        ]
        if comparison is not None:
            written.append(store.put(v.COMPARISON, _json(comparison), "application/json"))
        written += [store.put(name, _json(value), "application/json") for name, value in extra.items()]
        # The manifest goes last: its presence means every other artifact is complete.
        store.put(v.MANIFEST, _json({"artifacts": [a.to_dict() for a in written]}), "application/json")
    log(f"run {spec.run_id} finished: {task} {json.dumps(result.metrics)}")
    return fitted


def data_summary(
    spec: TrainSpec,
    loaded_rows: int,
    frame: pd.DataFrame,
    training: pd.DataFrame,
    held: pd.DataFrame,
    task: str,
    positive: Any = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "loaded_rows": loaded_rows,
        "filtered_rows": len(frame),
        "train_rows": len(training),
        "holdout_rows": len(held),
        "schema_fingerprint": data.schema_fingerprint(frame),
    }
    if spec.date_column:
        for name, part in (("train", training), ("holdout", held)):
            dates = part[spec.date_column]
            summary[f"{name}_dates"] = {"min": str(dates.min()), "max": str(dates.max())}
    if task != "regression":
        for name, part in (("train", training), ("holdout", held)):
            counts = part[spec.label].value_counts().sort_index()
            summary[f"{name}_label_balance"] = {str(k): int(v) for k, v in counts.items()}
        if task == BINARY:
            summary["positive_class"] = plain(positive)
            summary["decision_threshold"] = spec.decision_threshold
            summary["holdout_positive_rate"] = float((held[spec.label] == positive).mean())
    else:
        summary["label_mean"] = {"train": float(training[spec.label].mean()), "holdout": float(held[spec.label].mean())}
    return summary


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m railyard_trainer train --spec SPEC.json --out URI")
