"""The training run: load, filter, split, train, evaluate, serialize — and write every artifact."""

from __future__ import annotations

import io
import json
import platform
import sys
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


def run(raw_spec: dict, store: ArtifactStore) -> dict[str, Any]:
    """Train the spec's workflow and write its artifacts; returns the metrics."""
    # A requeued run writes to the same place: what an earlier attempt concluded must not linger.
    for stale in (v.MANIFEST, v.ERROR):
        store.delete(stale)
    written: list[StoredArtifact] = [store.put(v.SPEC, _json(raw_spec), "application/json")]
    spec = TrainSpec.from_dict(raw_spec)
    workflow_cls = get_workflow(spec.workflow_name)
    if bad := parameters.problems(spec.workflow_name, workflow_cls.declared_parameters(), spec.custom_params):
        raise BadDataError("the spec is malformed: " + "; ".join(f"{path}: {why}" for path, why in bad.items()))
    needed = [*spec.classifier_features, spec.label]
    timings: dict[str, float] = {}  # the trainer's own seconds per stage, whatever the scheduler did

    with stage("load", timings=timings) as details:
        sources_read: list[dict] = []
        frame = data.load(spec, sources_read)
        frame[POSITION] = np.arange(len(frame))
        missing = [c for c in [*needed, *filter(None, [spec.id_column])] if c not in frame.columns]
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

    task = resolve_task(workflow_cls.task, training[spec.label])
    positive = positive_class(training[spec.label], spec.positive_class) if task == BINARY else None
    with stage("train", timings=timings) as details:
        workflow = workflow_cls(spec.classifier_features, spec.label, spec.custom_params, spec.seed)
        try:
            estimator = workflow.train(training, held)
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

    with stage("serialize"):
        scores = result.scores
        if spec.date_column:
            scores.insert(0, spec.date_column, held[spec.date_column].to_numpy())
        scores.insert(0, v.ROW_ID, held[spec.id_column or POSITION].to_numpy())
        summary = data_summary(spec, loaded_rows, frame.drop(columns=POSITION), training, held, task, positive)
        summary["stage_seconds"] = timings
        summary["sources"] = sources_read
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
        # The manifest goes last: its presence means every other artifact is complete.
        store.put(v.MANIFEST, _json({"artifacts": [a.to_dict() for a in written]}), "application/json")
    log(f"run {spec.run_id} finished: {task} {json.dumps(result.metrics)}")
    return result.metrics


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
