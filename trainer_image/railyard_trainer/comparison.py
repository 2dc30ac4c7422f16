"""A challenger against its model's champion, on the challenger's own holdout rows.

The trainer of a model's retrain loads the champion's fitted model and scores the same holdout rows
with it, then writes `comparison.json`: both scores on the model's metric, their difference, a paired
bootstrap interval of the difference (the same resampled rows for both, seeded), the guardrails, and
the decision the policy makes of them (`railyard_trainer.promotion.decide`). Differences are taken in
the metric's better direction: positive means the challenger is better, whichever way the metric runs.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from railyard_trainer import promotion
from railyard_trainer import vocabulary as v
from railyard_trainer.evaluation import plain
from railyard_trainer.storage import open_store
from railyard_trainer.vocabulary import BINARY, MULTICLASS, REGRESSION, higher_is_better

#: Metrics that need a binary model's probabilities (the rest use its predicted classes).
NEEDS_PROBABILITIES = {"roc_auc", "average_precision", "log_loss", "brier", "recall_at_fpr_1pct", "recall_at_fpr_5pct"}
NEEDS_PROBABILITIES |= {"precision_at_top_1pct", "precision_at_top_5pct"}


class CannotCompare(Exception):
    """The champion cannot be scored on these rows; the message says why."""


@dataclass
class Outputs:
    """What one model says of the holdout rows."""

    predicted: np.ndarray  # classes (binary: 1 for the positive class), or values for regression
    score: np.ndarray | None = None  # binary: the probability of the positive class
    proba: np.ndarray | None = None  # multiclass: one column per class, in the challenger's class order
    classes: list | None = None  # multiclass: the challenger's classes, the order of `proba`'s columns


def outputs(task: str, estimator: Any, X: pd.DataFrame, positive: Any, threshold: float, classes: list) -> Outputs:
    """The model's answers on X, in the challenger's terms (its positive class, its class order)."""
    if task == REGRESSION:
        return Outputs(np.asarray(estimator.predict(X), dtype=float))
    own = list(getattr(estimator, "classes_", []))
    has_proba = hasattr(estimator, "predict_proba")
    if task == BINARY:
        if has_proba and positive in own:
            score = estimator.predict_proba(X)[:, own.index(positive)]
            return Outputs((score >= threshold).astype(int), score=score)
        return Outputs((np.asarray(estimator.predict(X)) == positive).astype(int))
    proba = None
    if has_proba and set(own) == set(classes):
        raw = estimator.predict_proba(X)
        proba = raw[:, [own.index(c) for c in classes]]
        predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    else:
        predicted = np.asarray(estimator.predict(X), dtype=object)
    return Outputs(predicted, proba=proba, classes=classes)


def truth_of(task: str, labels: np.ndarray, positive: Any) -> np.ndarray:
    """The labels as metrics take them: 1 for a binary model's positive class, floats for regression."""
    if task == BINARY:
        return (labels == positive).astype(int)
    return labels.astype(float) if task == REGRESSION else labels


def metric(name: str, task: str, truth: np.ndarray, out: Outputs, weights: np.ndarray | None = None) -> float:
    """The metric on the rows, each counted `weights` times (a bootstrap resample); NaN where undefined."""
    if name in NEEDS_PROBABILITIES and task == BINARY and out.score is None:
        raise CannotCompare(f"{name} needs probabilities and a model has no predict_proba")
    if name == "log_loss" and task == MULTICLASS and out.proba is None:
        raise CannotCompare("log_loss needs probabilities of the same classes from both models")
    w = weights
    if task == BINARY:
        ranking = name in ("roc_auc", "average_precision", "recall_at_fpr_1pct", "recall_at_fpr_5pct")
        if ranking and len(np.unique(truth if w is None else truth[w > 0])) < 2:
            return math.nan
        s, p = out.score, out.predicted
        binary = {
            "roc_auc": lambda: skm.roc_auc_score(truth, s, sample_weight=w),
            "average_precision": lambda: skm.average_precision_score(truth, s, sample_weight=w),
            "log_loss": lambda: skm.log_loss(truth, s, labels=[0, 1], sample_weight=w),
            "brier": lambda: skm.brier_score_loss(truth, s, sample_weight=w),
            "accuracy": lambda: skm.accuracy_score(truth, p, sample_weight=w),
            "precision": lambda: skm.precision_score(truth, p, zero_division=0, sample_weight=w),
            "recall": lambda: skm.recall_score(truth, p, zero_division=0, sample_weight=w),
            "f1": lambda: skm.f1_score(truth, p, zero_division=0, sample_weight=w),
            "recall_at_fpr_1pct": lambda: _recall_at_fpr(truth, s, 0.01, w),
            "recall_at_fpr_5pct": lambda: _recall_at_fpr(truth, s, 0.05, w),
            "precision_at_top_1pct": lambda: _precision_at_top(truth, s, 0.01, w),
            "precision_at_top_5pct": lambda: _precision_at_top(truth, s, 0.05, w),
        }
        return float(binary[name]())
    if task == MULTICLASS:
        multiclass = {
            "accuracy": lambda: skm.accuracy_score(truth, out.predicted, sample_weight=w),
            "macro_f1": lambda: skm.f1_score(truth, out.predicted, average="macro", zero_division=0, sample_weight=w),
            "log_loss": lambda: skm.log_loss(truth, out.proba, labels=out.classes, sample_weight=w),
        }
        return float(multiclass[name]())
    regression = {
        "rmse": lambda: math.sqrt(skm.mean_squared_error(truth, out.predicted, sample_weight=w)),
        "mae": lambda: skm.mean_absolute_error(truth, out.predicted, sample_weight=w),
        "r2": lambda: skm.r2_score(truth, out.predicted, sample_weight=w),
    }
    return float(regression[name]())


def _recall_at_fpr(truth: np.ndarray, score: np.ndarray, most: float, w: np.ndarray | None) -> float:
    fpr, tpr, _ = skm.roc_curve(truth, score, sample_weight=w, drop_intermediate=False)
    return float(tpr[fpr <= most].max())


def _precision_at_top(truth: np.ndarray, score: np.ndarray, share: float, w: np.ndarray | None) -> float:
    rows = np.arange(len(score)) if w is None else np.repeat(np.arange(len(score)), w.astype(int))
    top = rows[np.argsort(-score[rows], kind="stable")][: math.ceil(share * len(rows))]
    return float(truth[top].mean())


class _FastAUC:
    """ROC AUC under row weights in one pass over the rows sorted once (ties count a half, as
    scikit-learn's trapezoids do): a bootstrap's thousands of resamples cost a bincount each."""

    def __init__(self, truth: np.ndarray, score: np.ndarray):
        self.order = np.argsort(score, kind="mergesort")
        ordered = score[self.order]
        self.truth = truth[self.order].astype(float)
        self.group = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])
        self.groups = int(self.group[-1]) + 1 if len(ordered) else 0

    def __call__(self, weights: np.ndarray) -> float:
        w = weights[self.order]
        positives = np.bincount(self.group, weights=w * self.truth, minlength=self.groups)
        negatives = np.bincount(self.group, weights=w * (1 - self.truth), minlength=self.groups)
        below = np.cumsum(negatives) - negatives
        pairs = positives.sum() * negatives.sum()
        return float((positives * (below + negatives / 2)).sum() / pairs) if pairs else math.nan


def _weighted(name: str, task: str, truth: np.ndarray, out: Outputs):
    """The metric as a function of row weights: a few numpy operations for the common metrics, so that
    thousands of resamples stay cheap; scikit-learn's own for the rest."""
    if task == BINARY and name == "roc_auc":
        return _FastAUC(truth, out.score)
    if task == REGRESSION and name in ("rmse", "mae", "r2"):
        error = truth - out.predicted

        def regression(w: np.ndarray) -> float:
            total = w.sum()
            if name == "mae":
                return float(w @ np.abs(error) / total)
            squared = float(w @ error**2 / total)
            if name == "rmse":
                return math.sqrt(squared)
            mean = w @ truth / total
            spread = float(w @ (truth - mean) ** 2 / total)
            return 1 - squared / spread if spread else math.nan

        return regression
    if name == "accuracy":
        hit = (truth == out.predicted).astype(float)
        return lambda w: float(w @ hit / w.sum())
    if task == BINARY and name == "brier" and out.score is not None:
        squared = (out.score - truth) ** 2
        return lambda w: float(w @ squared / w.sum())
    return lambda w: metric(name, task, truth, out, w)


def paired_bootstrap(
    name: str,
    task: str,
    truth: np.ndarray,
    champion: Outputs,
    challenger: Outputs,
    seed: int,
    confidence: float,
    resamples: int = promotion.RESAMPLES,
) -> tuple[float, float, int]:
    """The interval of (challenger - champion) in the better direction, from `resamples` resamples of
    the rows with replacement, the same rows for both models; with how many resamples were defined."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    sign = 1.0 if higher_is_better(name) else -1.0
    scorers = [_weighted(name, task, truth, out) for out in (champion, challenger)]
    differences = np.empty(resamples)
    for i in range(resamples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        before, after = (score(weights) for score in scorers)
        differences[i] = sign * (after - before)
    defined = differences[~np.isnan(differences)]
    if len(defined) == 0:
        raise CannotCompare(f"{name} is undefined on every resample of these rows")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high), len(defined)


def guard_calibration(truth: np.ndarray, champion: Outputs, challenger: Outputs, margin: float | None) -> dict | None:
    """Brier score not worse than the champion's by more than `margin` (binary models with probabilities)."""
    if margin is None or champion.score is None or challenger.score is None:
        return None
    before, after = (float(skm.brier_score_loss(truth, o.score)) for o in (champion, challenger))
    passed = after - before <= margin
    return {
        "name": "calibration",
        "champion_brier": before,
        "challenger_brier": after,
        "margin": margin,
        "passed": passed,
        "reason": f"Brier score {after:.4f} against the champion's {before:.4f} "
        + ("is within" if passed else "is worse by more than")
        + f" the margin {margin}",
    }


def guard_segments(
    name: str, task: str, truth: np.ndarray, champion: Outputs, challenger: Outputs, segments: pd.Series, rules: dict
) -> dict:
    """No segment (a value of the column, with enough rows) worse than under the champion by more than the margin."""
    margin, least = rules["segment_margin"], rules["min_segment_rows"]
    sign = 1.0 if higher_is_better(name) else -1.0
    checked, worse = [], []
    values = segments.to_numpy()
    for value in pd.unique(values):
        rows = values == value
        if rows.sum() < least:
            continue
        parts = [subset(o, rows) for o in (champion, challenger)]
        before, after = (metric(name, task, truth[rows], part) for part in parts)
        if math.isnan(before) or math.isnan(after):
            continue
        drop = sign * (before - after)
        entry = {"segment": plain(value), "rows": int(rows.sum()), "champion": before, "challenger": after}
        checked.append(entry)
        if drop > margin:
            worse.append(entry)
    column = rules["segment_column"]
    passed = not worse
    reason = (
        f"no value of {column} among {len(checked)} checked is worse by more than {margin}"
        if passed
        else f"{len(worse)} value(s) of {column} are worse by more than {margin}: "
        + ", ".join(f"{w['segment']} ({w['champion']:.4f} → {w['challenger']:.4f})" for w in worse[:5])
    )
    return {
        "name": "segments",
        "column": column,
        "margin": margin,
        "checked": len(checked),
        "passed": passed,
        "worse": worse,
        "reason": reason,
    }


def subset(out: Outputs, rows: np.ndarray) -> Outputs:
    return Outputs(
        out.predicted[rows],
        None if out.score is None else out.score[rows],
        None if out.proba is None else out.proba[rows],
        out.classes,
    )


def load_champion(uri: str) -> tuple[Any, dict]:
    """The champion's fitted model and its metadata, from its artifact folder."""
    store = open_store(uri)
    return joblib.load(io.BytesIO(store.get(v.MODEL))), json.loads(store.get(v.METADATA))


@dataclass
class Challenger:
    """The fitted retrain and the holdout rows it was evaluated on."""

    task: str
    estimator: Any
    held: pd.DataFrame
    label: str
    features: list[str]
    positive: Any
    threshold: float
    seed: int


def compare(challenge: dict, challenger: Challenger) -> dict:
    """comparison.json for a challenger and its model's champion (`challenge`: which, by what metric and policy)."""
    policy, name = challenge["policy"], challenge["metric"]
    base = {"champion_run": challenge["champion_run"], "metric": name, "higher_is_better": higher_is_better(name)}
    try:
        return {**base, **_compare(challenge, challenger)}
    except CannotCompare as exc:
        decision, reason = promotion.undecided(policy, f"the champion cannot be compared on these rows: {exc}")
    except Exception as exc:  # noqa: BLE001 - a champion that cannot be loaded or scored must not fail the challenger
        decision, reason = promotion.undecided(policy, f"the champion could not be scored: {type(exc).__name__}: {exc}")
    empty = {"champion_score": None, "challenger_score": None, "difference": None, "interval": None}
    return {**base, **empty, "guardrails": [], "decision": decision, "reason": reason}


def _compare(challenge: dict, fitted: Challenger) -> dict:
    task, held, positive, threshold = fitted.task, fitted.held, fitted.positive, fitted.threshold
    policy, name = challenge["policy"], challenge["metric"]
    champion_model, metadata = load_champion(challenge["champion_uri"])
    if metadata.get("task") != task:
        raise CannotCompare(f"the champion is a {metadata.get('task')} model and the challenger a {task} one")
    wanted = list(metadata.get("classifier_features") or [])
    missing = [column for column in wanted if column not in held.columns]
    if missing:
        raise CannotCompare(f"the holdout rows lack the champion's feature(s) {', '.join(missing)}")
    classes = list(getattr(fitted.estimator, "classes_", []))
    truth = truth_of(task, held[fitted.label].to_numpy(), positive)
    challenger = outputs(task, fitted.estimator, held[fitted.features], positive, threshold, classes)
    champion = outputs(task, champion_model, held[wanted], positive, threshold, classes)
    champion_score = metric(name, task, truth, champion)
    challenger_score = metric(name, task, truth, challenger)
    sign = 1.0 if higher_is_better(name) else -1.0
    low, high, defined = paired_bootstrap(name, task, truth, champion, challenger, fitted.seed, policy["confidence"])
    guards = [guard_calibration(truth, champion, challenger, policy["guardrails"]["brier_margin"])]
    column = policy["guardrails"]["segment_column"]
    if column is not None:
        if column not in held.columns:
            raise CannotCompare(f"the segment guardrail's column {column!r} is not among the holdout's columns")
        guards.append(guard_segments(name, task, truth, champion, challenger, held[column], policy["guardrails"]))
    guardrails = [guard for guard in guards if guard is not None]
    difference = sign * (challenger_score - champion_score)
    decision, reason = promotion.decide(policy, name, (low, high), guardrails)
    return {
        "champion_score": champion_score,
        "challenger_score": challenger_score,
        "difference": difference,
        "interval": {"low": low, "high": high, "confidence": policy["confidence"], "resamples": defined},
        "rows": len(truth),
        "guardrails": guardrails,
        "decision": decision,
        "reason": reason,
    }
