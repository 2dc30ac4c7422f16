"""Evaluate a fitted estimator on the holdout: scalar metrics and the data behind every chart."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance

from railyard_trainer.errors import BadDataError
from railyard_trainer.vocabulary import (
    BINARY,
    DEFAULT_DECISION_THRESHOLD,
    MAX_CLASSES_OF_DECIMALS,
    MULTICLASS,
    REGRESSION,
)

__all__ = ["BINARY", "MULTICLASS", "REGRESSION", "Evaluation", "evaluate", "plain", "resolve_task"]

CURVE_POINTS = 500
SCATTER_POINTS = 2000
IMPORTANCE_ROWS = 2000


@dataclass
class Evaluation:
    task: str
    metrics: dict[str, float]
    charts: dict[str, Any]
    scores: pd.DataFrame  # one row per holdout row: label and score or prediction
    #: What the evaluation could not do, in words (an estimator without predict_proba).
    notes: list[str] = field(default_factory=list)


def resolve_task(workflow_task: str, training_labels: pd.Series) -> str:
    if workflow_task == REGRESSION:
        if not pd.api.types.is_numeric_dtype(training_labels):
            raise BadDataError(f"a regression label must be numeric, not {training_labels.dtype}")
        return REGRESSION
    n_classes = training_labels.nunique()
    if pd.api.types.is_float_dtype(training_labels) and n_classes > MAX_CLASSES_OF_DECIMALS:
        values = training_labels.dropna()
        if not (values == values.round()).all():
            raise BadDataError(
                f"label {training_labels.name!r} has {n_classes} distinct decimal values: it is a measurement, "
                "not classes; train it with a regression workflow"
            )
    if n_classes < 2:
        value = training_labels.iloc[0] if len(training_labels) else None
        raise BadDataError(f"label {training_labels.name!r} has a single class ({value!r}) in the training rows")
    return BINARY if n_classes == 2 else MULTICLASS


def positive_class(labels: pd.Series, wanted: Any = None) -> Any:
    """The positive class of binary labels: `wanted` (as the labels hold it), or by default the larger
    of two numbers, True, or the second in sorted order (scikit-learn's `classes_[1]`)."""
    classes = list(np.unique(labels.dropna()))
    if wanted is None:
        return classes[1]
    for value in classes:
        if plain(value) == wanted or str(plain(value)) == str(wanted):
            return value
    known = ", ".join(repr(plain(c)) for c in classes)
    raise BadDataError(f"train.positive_class {wanted!r} is not one of the label's classes ({known})")


def recall_at_fpr(truth: np.ndarray, score: np.ndarray, most: float) -> float:
    """The largest true-positive rate among ROC points whose false-positive rate is at most `most`."""
    fpr, tpr, _ = skm.roc_curve(truth, score, drop_intermediate=False)
    return float(tpr[fpr <= most].max())


def precision_at_top(truth: np.ndarray, score: np.ndarray, share: float) -> float:
    """The precision among the ⌈share⌉ highest-scored rows (ties in their holdout order)."""
    top = np.argsort(-score, kind="stable")[: math.ceil(share * len(score))]
    return float(truth[top].mean())


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages and JSON."""
    return value.item() if hasattr(value, "item") else value


def _thin(xs: np.ndarray, *others: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    """Keep at most `points` evenly spaced points of a curve, always including both ends."""
    idx = np.unique(np.linspace(0, len(xs) - 1, num=min(points, len(xs))).round().astype(int))
    return [np.asarray(a)[idx].astype(float).round(6).tolist() for a in (xs, *others)]


def _importances(estimator: Any, X: pd.DataFrame, y: pd.Series, scoring: str, seed: int) -> dict:
    sample = X.sample(n=min(len(X), IMPORTANCE_ROWS), random_state=seed)
    result = permutation_importance(
        estimator, sample, y.loc[sample.index], scoring=scoring, n_repeats=3, random_state=seed
    )
    order = np.argsort(-result.importances_mean)
    return {
        "features": [str(X.columns[i]) for i in order],
        "importance": [round(float(result.importances_mean[i]), 6) for i in order],
        "std": [round(float(result.importances_std[i]), 6) for i in order],
        "method": f"permutation ({scoring})",
    }


def evaluate_binary(
    estimator: Any,
    X: pd.DataFrame,
    y: pd.Series,
    seed: int,
    positive: Any = None,
    threshold: float = DEFAULT_DECISION_THRESHOLD,
) -> Evaluation:
    classes = list(estimator.classes_)
    positive = classes[1] if positive is None else positive
    negative = next(c for c in classes if c != positive)
    if y.nunique() < 2:
        raise BadDataError(
            f"label {y.name!r} has a single class ({plain(y.iloc[0])!r}) in the holdout; "
            "binary metrics need both classes"
        )
    truth = (y == positive).to_numpy().astype(int)
    if not hasattr(estimator, "predict_proba"):
        predicted = (estimator.predict(X) == positive).astype(int)
        return _without_probabilities(estimator, X, y, seed, truth, predicted, [str(negative), str(positive)])
    score = estimator.predict_proba(X)[:, classes.index(positive)]
    predicted = (score >= threshold).astype(int)
    metrics = {
        "roc_auc": skm.roc_auc_score(truth, score),
        "average_precision": skm.average_precision_score(truth, score),
        "log_loss": skm.log_loss(truth, score, labels=[0, 1]),
        "brier": skm.brier_score_loss(truth, score),
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
        "recall_at_fpr_1pct": recall_at_fpr(truth, score, 0.01),
        "recall_at_fpr_5pct": recall_at_fpr(truth, score, 0.05),
        "precision_at_top_1pct": precision_at_top(truth, score, 0.01),
        "precision_at_top_5pct": precision_at_top(truth, score, 0.05),
    }
    fpr, tpr, _ = skm.roc_curve(truth, score)
    precision, recall, _ = skm.precision_recall_curve(truth, score)
    prob_true, prob_pred = calibration_curve(truth, score, n_bins=10, strategy="quantile")
    bins = np.linspace(0, 1, 41)
    charts = {
        "roc": dict(zip(("fpr", "tpr"), _thin(fpr, tpr), strict=True)),
        "pr": dict(zip(("recall", "precision"), _thin(recall[::-1], precision[::-1]), strict=True)),
        "calibration": {
            "mean_predicted": prob_pred.round(6).tolist(),
            "fraction_positive": prob_true.round(6).tolist(),
        },
        "score_histogram": {
            "bin_edges": bins.round(4).tolist(),
            "negative": np.histogram(score[truth == 0], bins=bins)[0].tolist(),
            "positive": np.histogram(score[truth == 1], bins=bins)[0].tolist(),
        },
        "confusion_matrix": {
            "labels": [str(negative), str(positive)],
            "matrix": skm.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
            "threshold": threshold,
        },
        "feature_importance": _importances(estimator, X, y, "roc_auc", seed),
    }
    scores = pd.DataFrame({"label": y.to_numpy(), "score": score})
    return Evaluation(BINARY, _floats(metrics), charts, scores)


def _without_probabilities(
    estimator: Any,
    X: pd.DataFrame,
    y: pd.Series,
    seed: int,
    truth: np.ndarray,
    predicted: np.ndarray,
    labels: list[str],
) -> Evaluation:
    """A binary evaluation from `predict` alone: the metrics that need no probabilities, and a note."""
    metrics = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
    }
    charts = {
        "confusion_matrix": {
            "labels": labels,
            "matrix": skm.confusion_matrix(truth, predicted, labels=[0, 1]).tolist(),
        },
        "feature_importance": _importances(estimator, X, y, "accuracy", seed),
    }
    note = _no_probabilities(estimator, "ROC AUC, average precision, log loss, Brier score, the operating points")
    scores = pd.DataFrame({"label": y.to_numpy(), "prediction": predicted})
    return Evaluation(BINARY, _floats(metrics), charts, scores, [note])


def _no_probabilities(estimator: Any, needing: str) -> str:
    return (
        f"the estimator ({type(estimator).__name__}) has no predict_proba: {needing} and the curves "
        "need probabilities and are left out"
    )


def evaluate_multiclass(estimator: Any, X: pd.DataFrame, y: pd.Series, seed: int) -> Evaluation:
    classes = list(estimator.classes_)
    truth = y.to_numpy()
    notes = []
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        # In the classes' own type: sklearn calls an object array of numbers "unknown" and refuses it.
        predicted = np.asarray(estimator.classes_)[proba.argmax(axis=1)]
    else:
        proba, predicted = None, np.asarray(estimator.predict(X))
        notes.append(_no_probabilities(estimator, "log loss"))
    metrics = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "macro_f1": skm.f1_score(truth, predicted, average="macro", zero_division=0),
    }
    if proba is not None:
        metrics["log_loss"] = skm.log_loss(truth, proba, labels=classes)
    per_class = skm.f1_score(truth, predicted, average=None, labels=classes, zero_division=0)
    charts = {
        "confusion_matrix": {
            "labels": [str(c) for c in classes],
            "matrix": skm.confusion_matrix(truth, predicted, labels=classes).tolist(),
        },
        "per_class_f1": {"labels": [str(c) for c in classes], "f1": per_class.round(6).tolist()},
        "feature_importance": _importances(estimator, X, y, "accuracy", seed),
    }
    scores = pd.DataFrame({"label": y.to_numpy(), "prediction": predicted})
    if proba is not None:
        for i, cls in enumerate(classes):
            scores[f"score_{plain(cls)}"] = proba[:, i]
    return Evaluation(MULTICLASS, _floats(metrics), charts, scores, notes)


def evaluate_regression(estimator: Any, X: pd.DataFrame, y: pd.Series, seed: int) -> Evaluation:
    truth = y.to_numpy(dtype=float)
    predicted = np.asarray(estimator.predict(X), dtype=float)
    residuals = truth - predicted
    metrics = {
        "rmse": float(np.sqrt(skm.mean_squared_error(truth, predicted))),
        "mae": skm.mean_absolute_error(truth, predicted),
        "r2": skm.r2_score(truth, predicted),
    }
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(truth), size=min(len(truth), SCATTER_POINTS), replace=False))
    counts, edges = np.histogram(residuals, bins=40)
    charts = {
        "predicted_vs_actual": {
            "actual": truth[idx].round(6).tolist(),
            "predicted": predicted[idx].round(6).tolist(),
        },
        "residual_histogram": {"bin_edges": edges.round(6).tolist(), "counts": counts.tolist()},
        "feature_importance": _importances(estimator, X, y, "r2", seed),
    }
    scores = pd.DataFrame({"label": truth, "prediction": predicted})
    return Evaluation(REGRESSION, _floats(metrics), charts, scores)


EVALUATORS = {BINARY: evaluate_binary, MULTICLASS: evaluate_multiclass, REGRESSION: evaluate_regression}


def evaluate(task: str, estimator: Any, X: pd.DataFrame, y: pd.Series, seed: int, **binary: Any) -> Evaluation:
    """The holdout's metrics and chart data; `binary` (`positive`, `threshold`) concerns a binary task only."""
    if task == BINARY:
        return evaluate_binary(estimator, X, y, seed, **binary)
    return EVALUATORS[task](estimator, X, y, seed)


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}
