"""Comparing runs: overlaid curves, a metrics table with the best of each row, and a request diff."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import plotly.graph_objects as go

from railyard_trainer.vocabulary import higher_is_better
from training.charts import LAYOUT, to_spec

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


def _figure(title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **LAYOUT)
    return fig


def overlaid(runs: list[Any], evaluations: list[dict | None]) -> list[dict]:
    """ROC and PR curves and positive-class score distributions of binary runs, one trace per run."""
    roc = _figure("ROC curves", "False positive rate", "True positive rate")
    roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="chance")
    pr = _figure("Precision–recall curves", "Recall", "Precision")
    scores = _figure("Scores of positive holdout rows", "Score", "Share of positives")
    drawn = False
    for i, (run, evaluation) in enumerate(zip(runs, evaluations, strict=True)):
        charts = (evaluation or {}).get("charts", {})
        name = f"#{run.pk} {run.workflow.name}"
        line = dict(color=PALETTE[i % len(PALETTE)])  # one colour per run on every chart
        if "roc" in charts:
            roc.add_scatter(x=charts["roc"]["fpr"], y=charts["roc"]["tpr"], mode="lines", name=name, line=line)
            pr.add_scatter(x=charts["pr"]["recall"], y=charts["pr"]["precision"], mode="lines", name=name, line=line)
            histogram = charts["score_histogram"]
            total = sum(histogram["positive"]) or 1
            edges = histogram["bin_edges"]
            scores.add_scatter(
                x=[(a + b) / 2 for a, b in pairwise(edges)],
                y=[count / total for count in histogram["positive"]],
                mode="lines",
                name=name,
                line=line,
            )
            drawn = True
    return [to_spec(fig) for fig in (roc, pr, scores)] if drawn else []
