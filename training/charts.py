"""Plotly figures for a run's evaluation, built from the `evaluation.json` the trainer wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise

import plotly.graph_objects as go
import plotly.io as pio

LAYOUT = dict(
    template="plotly_white",
    height=340,
    margin=dict(l=60, r=20, t=50, b=50),
    font=dict(family="system-ui, sans-serif", size=12),
)


def _figure(title: str, x_title: str, y_title: str, **layout: object) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **LAYOUT, **layout)
    return fig


def roc(charts: dict) -> go.Figure:
    fig = _figure("ROC curve", "False positive rate", "True positive rate")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="chance")
    fig.add_scatter(x=charts["roc"]["fpr"], y=charts["roc"]["tpr"], mode="lines", name="model")
    return fig


def precision_recall(charts: dict) -> go.Figure:
    fig = _figure("Precision–recall curve", "Recall", "Precision")
    fig.add_scatter(x=charts["pr"]["recall"], y=charts["pr"]["precision"], mode="lines", name="model")
    return fig


def calibration(charts: dict) -> go.Figure:
    fig = _figure("Calibration", "Mean predicted probability", "Fraction positive")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), name="perfect")
    data = charts["calibration"]
    fig.add_scatter(x=data["mean_predicted"], y=data["fraction_positive"], mode="lines+markers", name="model")
    return fig


def score_histogram(charts: dict) -> go.Figure:
    data = charts["score_histogram"]
    edges = data["bin_edges"]
    centers = [(a + b) / 2 for a, b in pairwise(edges)]
    fig = _figure("Scores by class", "Score", "Rows (log scale)", barmode="overlay", yaxis_type="log")
    fig.add_bar(x=centers, y=data["negative"], name="negative", opacity=0.6)
    fig.add_bar(x=centers, y=data["positive"], name="positive", opacity=0.6)
    return fig


def confusion_matrix(charts: dict) -> go.Figure:
    data = charts["confusion_matrix"]
    fig = _figure("Confusion matrix", "Predicted", "Actual")
    fig.add_heatmap(
        z=data["matrix"],
        x=data["labels"],
        y=data["labels"],
        colorscale="Blues",
        text=data["matrix"],
        texttemplate="%{text}",
        showscale=False,
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def feature_importance(charts: dict) -> go.Figure:
    data = charts["feature_importance"]
    fig = _figure(f"Feature importance — {data['method']}", "Importance", "")
    fig.add_bar(
        x=data["importance"][::-1], y=data["features"][::-1], orientation="h", error_x=dict(array=data["std"][::-1])
    )
    return fig


def per_class_f1(charts: dict) -> go.Figure:
    fig = _figure("F1 by class", "Class", "F1")
    fig.add_bar(x=charts["per_class_f1"]["labels"], y=charts["per_class_f1"]["f1"])
    return fig


def predicted_vs_actual(charts: dict) -> go.Figure:
    data = charts["predicted_vs_actual"]
    fig = _figure("Predicted vs actual", "Actual", "Predicted")
    fig.add_scatter(x=data["actual"], y=data["predicted"], mode="markers", marker=dict(size=4, opacity=0.5))
    low, high = min(data["actual"] + data["predicted"]), max(data["actual"] + data["predicted"])
    fig.add_scatter(x=[low, high], y=[low, high], mode="lines", line=dict(dash="dot", color="#999"))
    fig.update_layout(showlegend=False)
    return fig


def residual_histogram(charts: dict) -> go.Figure:
    data = charts["residual_histogram"]
    edges = data["bin_edges"]
    fig = _figure("Residuals", "Actual − predicted", "Rows")
    fig.add_bar(x=[(a + b) / 2 for a, b in pairwise(edges)], y=data["counts"])
    return fig


#: The charts drawn for each key the trainer may write, in page order.
BUILDERS: list[tuple[str, Callable[[dict], go.Figure]]] = [
    ("roc", roc),
    ("pr", precision_recall),
    ("score_histogram", score_histogram),
    ("calibration", calibration),
    ("confusion_matrix", confusion_matrix),
    ("per_class_f1", per_class_f1),
    ("predicted_vs_actual", predicted_vs_actual),
    ("residual_histogram", residual_histogram),
    ("feature_importance", feature_importance),
]


def figures(evaluation: dict | None) -> list[go.Figure]:
    charts = (evaluation or {}).get("charts", {})
    return [build(charts) for key, build in BUILDERS if key in charts]


def to_spec(fig: go.Figure) -> dict:
    """A figure as plain JSON (`data` and `layout`), for plotly.js to draw in the page."""
    return json.loads(pio.to_json(fig))


def specs(evaluation: dict | None) -> list[dict]:
    return [to_spec(fig) for fig in figures(evaluation)]


def trend(runs: list, metric: str) -> list[dict]:
    """One metric of succeeded runs over time, as a single chart spec (none without two points)."""
    points = [(run.finished_at, run.metrics[metric], run.pk) for run in runs if metric in (run.metrics or {})]
    if len(points) < 2:
        return []
    points.sort()
    fig = _figure(f"{metric} of recent runs", "Finished", metric)
    fig.add_scatter(
        x=[p[0].isoformat() for p in points],
        y=[p[1] for p in points],
        mode="lines+markers",
        text=[f"run #{p[2]}" for p in points],
        hovertemplate="%{text}: %{y:.4f}<extra></extra>",
    )
    return [to_spec(fig)]


def retrains(runs: list, metric: str, champions: set[int], moves: dict[int, str]) -> list[dict]:
    """A model's metric over its successive retrains (by their clocks): champions marked, and each
    run promoted, rejected or restored annotated."""
    points = [run for run in runs if metric in (run.metrics or {})]
    if not points:
        return []
    points.sort(key=lambda run: (run.scheduled_time or run.created_at, run.pk))
    fig = _figure(f"{metric} over retrains", "Scheduled time (each in its schedule's timezone)", metric)
    # Local wall times: plotly draws the time as written, so each point sits at its own clock.
    x = [(run.clock or run.created_at).isoformat() for run in points]
    fig.add_scatter(
        x=x,
        y=[run.metrics[metric] for run in points],
        mode="lines+markers",
        name="retrain",
        text=[f"run #{run.pk}" for run in points],
        hovertemplate="%{text}: %{y:.4f}<extra></extra>",
    )
    crowned = [(xi, run) for xi, run in zip(x, points, strict=True) if run.pk in champions]
    if crowned:
        fig.add_scatter(
            x=[xi for xi, _ in crowned],
            y=[run.metrics[metric] for _, run in crowned],
            mode="markers",
            name="champion",
            marker=dict(symbol="star", size=14, color="#d4a017"),
            text=[f"run #{run.pk} (champion)" for _, run in crowned],
            hovertemplate="%{text}: %{y:.4f}<extra></extra>",
        )
    for xi, run in zip(x, points, strict=True):
        if run.pk in moves:
            fig.add_annotation(x=xi, y=run.metrics[metric], text=moves[run.pk], showarrow=True, arrowhead=2, ay=-30)
    return [to_spec(fig)]


def segment_differences(segments: list) -> list[dict]:
    """Each segment's model minus the generic model on the segment's own rows, with its interval,
    smallest first; the segments whose model serves them in another colour."""
    if not segments:
        return []
    metric = segments[0].metric
    fig = _figure(f"{metric}: segment model minus generic model", "Segments (by difference)", "Difference")
    for winner, colour in (("generic", "#8a8f98"), ("segment", "#1f6feb")):
        shown = [(i, s) for i, s in enumerate(segments) if s.winner == winner]
        if not shown:
            continue
        fig.add_scatter(
            x=[i for i, _ in shown],
            y=[s.difference for _, s in shown],
            mode="markers",
            name=f"served by the {winner} model",
            marker=dict(color=colour, size=6),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[(s.interval or {}).get("high", s.difference) - s.difference for _, s in shown],
                arrayminus=[s.difference - (s.interval or {}).get("low", s.difference) for _, s in shown],
                thickness=1,
            ),
            text=[s.name for _, s in shown],
            hovertemplate="%{text}: %{y:.4f}<extra></extra>",
        )
    fig.add_hline(y=0, line=dict(dash="dot", color="#999"))
    fig.update_xaxes(showticklabels=False)
    return [to_spec(fig)]


def sparkline(values: list[float], width: int = 120, height: int = 24) -> str:
    """The points of an inline SVG polyline of `values` (oldest first); empty with fewer than two."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (value - low) / span * height:.1f}" for i, value in enumerate(values))
