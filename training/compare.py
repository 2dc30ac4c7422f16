"""Comparing runs: overlaid charts, a metrics table with the best of each row, and what differs in their
requests and in the data they read."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import plotly.graph_objects as go

from railyard_trainer.vocabulary import higher_is_better
from training.charts import LAYOUT, confusion_matrix, to_spec
from training.provenance import changes

#: Plotly's default colours, assigned to runs in order.
PALETTE = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3"]


def metrics_table(runs: list[Any]) -> list[dict]:
    """One row per metric any run has: its values (None where missing) and which run is best."""
    names = sorted({name for run in runs for name in run.metrics})
    rows = []
    for name in names:
        values = [run.metrics.get(name) for run in runs]
        present = [v for v in values if v is not None]
        # A tie between every run singles none out.
        best = (max if higher_is_better(name) else min)(present) if len(set(present)) > 1 else None
        rows.append({"name": name, "cells": [{"value": v, "best": v is not None and v == best} for v in values]})
    return rows


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A request as dotted paths to JSON leaves: `data.filters[0].feature_value` → `1`."""
    if isinstance(value, dict):
        items: dict[str, str] = {}
        for key, inner in value.items():
            items.update(flatten(inner, f"{prefix}.{key}" if prefix else key))
        return items
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        items = {}
        for i, inner in enumerate(value):
            items.update(flatten(inner, f"{prefix}[{i}]"))
        return items
    return {prefix: json.dumps(value)}


def request_diff(runs: list[Any]) -> list[dict]:
    """The request fields whose values differ between the runs, with each run's value."""
    flat = [flatten(run.request) for run in runs]
    paths = sorted({path for f in flat for path in f})
    return [
        {"path": path, "values": [f.get(path, "—") for f in flat]}
        for path in paths
        if len({f.get(path) for f in flat}) > 1
    ]


def data_diff(runs: list[Any]) -> list[dict] | None:
    """What each later run read that differs from the first run's data, a row per run with its
    lines (`provenance.changes`); None when a run recorded no sources (it has not trained yet)."""
    read = [(run.data_summary or {}).get("sources") for run in runs]
    if not all(read):
        return None
    return [
        {"run": run, "changes": lines}
        for run, sources in zip(runs[1:], read[1:], strict=True)
        if (lines := changes(read[0], sources))
    ]


def _figure(title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **LAYOUT)
    return fig


def overlaid(runs: list[Any], evaluations: list[dict | None]) -> list[dict]:
    """Each task's charts with one trace per run: binary ROC and PR curves and score distributions;
    regression predictions against actual values and residual distributions; multiclass F1 by class,
    and each run's confusion matrix side by side."""
    named = [
        (f"#{run.pk} {run.workflow.name}", dict(color=PALETTE[i % len(PALETTE)]), (evaluation or {}).get("charts", {}))
        for i, (run, evaluation) in enumerate(zip(runs, evaluations, strict=True))
    ]
    figures = [*_binary(named), *_regression(named), *_multiclass(named)]
    return [to_spec(fig) for fig in figures]


def _binary(named: list[tuple[str, dict, dict]]) -> list[go.Figure]:
    roc = _figure("ROC curves", "False positive rate", "True positive rate")
    roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="chance")
    pr = _figure("Precision–recall curves", "Recall", "Precision")
    scores = _figure("Scores of positive holdout rows", "Score", "Share of positives")
    drawn = False
    for name, line, charts in named:  # one colour per run on every chart
        if "roc" in charts:
            roc.add_scatter(x=charts["roc"]["fpr"], y=charts["roc"]["tpr"], mode="lines", name=name, line=line)
            pr.add_scatter(x=charts["pr"]["recall"], y=charts["pr"]["precision"], mode="lines", name=name, line=line)
            histogram = charts["score_histogram"]
            scores.add_scatter(**_shares(histogram["bin_edges"], histogram["positive"]), name=name, line=line)
            drawn = True
    return [roc, pr, scores] if drawn else []


def _regression(named: list[tuple[str, dict, dict]]) -> list[go.Figure]:
    predictions = _figure("Predicted vs actual", "Actual", "Predicted")
    residuals = _figure("Residuals", "Actual − predicted", "Share of rows")
    values = []
    for name, line, charts in named:
        if "predicted_vs_actual" in charts:
            data = charts["predicted_vs_actual"]
            predictions.add_scatter(
                x=data["actual"],
                y=data["predicted"],
                mode="markers",
                name=name,
                marker=dict(size=4, opacity=0.5, **line),
            )
            values += data["actual"] + data["predicted"]
            histogram = charts["residual_histogram"]
            residuals.add_scatter(**_shares(histogram["bin_edges"], histogram["counts"]), name=name, line=line)
    if not values:
        return []
    low, high = min(values), max(values)
    predictions.add_scatter(
        x=[low, high], y=[low, high], mode="lines", line=dict(dash="dot", color="#999"), name="exact"
    )
    return [predictions, residuals]


def _multiclass(named: list[tuple[str, dict, dict]]) -> list[go.Figure]:
    f1 = _figure("F1 by class", "Class", "F1")
    matrices = []
    for name, line, charts in named:
        if "per_class_f1" in charts:
            f1.add_bar(x=charts["per_class_f1"]["labels"], y=charts["per_class_f1"]["f1"], name=name, marker=line)
            matrix = confusion_matrix(charts)
            matrix.update_layout(title=f"Confusion matrix of {name}")
            matrices.append(matrix)
    return [f1, *matrices] if matrices else []


def _shares(edges: list[float], counts: list[int]) -> dict:
    """A histogram as a line of each bin's share of the rows, so runs of any size compare."""
    total = sum(counts) or 1
    return {"x": [(a + b) / 2 for a, b in pairwise(edges)], "y": [n / total for n in counts], "mode": "lines"}
