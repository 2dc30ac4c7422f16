"""Compositions of trained runs: who may be composed for a holdout, and how their scores combine."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from railyard_trainer import composition
from railyard_trainer.errors import BadDataError


def spec(start: str, end: str, held: tuple[str, str] | None = None) -> dict:
    holdout = {"sampling_function": "RANDOM", "fraction": 0.2}
    if held:
        holdout = {"sampling_function": "DATE_RANGE", "date_range": {"start": held[0], "end": held[1]}}
    return {"data": {"date_range": {"start": start, "end": end}, "holdout_sampling": holdout}}


def test_a_runs_training_window_is_its_range_less_a_date_holdout():
    assert composition.training_windows(spec("2026-01-01", "2026-10-01", ("2026-09-01", "2026-10-01"))) == [
        (date(2026, 1, 1), date(2026, 9, 1))
    ]
    # Rows after a date-range holdout are not trained on either.
    assert composition.training_windows(spec("2026-01-01", "2026-10-01", ("2026-05-01", "2026-06-01"))) == [
        (date(2026, 1, 1), date(2026, 5, 1))
    ]
    assert composition.training_windows(spec("2026-01-01", "2026-10-01")) == [(date(2026, 1, 1), date(2026, 10, 1))]
    assert composition.training_windows({"data": {"holdout_sampling": {"sampling_function": "RANDOM"}}}) is None


def test_members_that_leak_or_disagree_are_named():
    holdout = (date(2026, 10, 1), date(2026, 11, 1))
    members = {
        11: {
            "label": "is_fraud",
            "task": "binary",
            "spec": spec("2025-10-01", "2026-10-01", ("2026-09-01", "2026-10-01")),
        },
        12: {
            "label": "is_fraud",
            "task": "binary",
            "spec": spec("2025-11-01", "2026-11-01", ("2026-10-15", "2026-11-01")),
        },
        13: {"label": "chargeback", "task": "binary", "spec": spec("2025-01-01", "2025-06-01")},
        14: {"label": "is_fraud", "task": "binary", "spec": {"data": {}}},
    }
    errors = composition.problems(members, holdout)
    assert "compose.members[0]" not in errors  # trained before the holdout: fine
    assert "Run 12 trained on 2025-11-01 … 2026-10-15, which overlaps the holdout" in errors["compose.members[1]"][0]
    assert "predicts 'chargeback'" in errors["compose.members[2]"][0]
    assert "no date range bounds" in errors["compose.members[3]"][0]


def members_on(z: np.ndarray, noise: np.ndarray, truth: np.ndarray) -> list:
    """Two fitted pipelines selecting their own column by name: one on the signal, one on noise."""
    frame = pd.DataFrame({"z": z, "noise": noise})
    fitted = []
    for column in ("z", "noise"):
        pipeline = make_pipeline(ColumnTransformer([("x", "passthrough", [column])]), LogisticRegression())
        fitted.append((f"run_{len(fitted) + 21}", pipeline.fit(frame[[column]], truth)))
    return fitted


def crafted(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    return pd.DataFrame({"z": z, "noise": rng.normal(size=n)}), rng.binomial(1, 1 / (1 + np.exp(-2 * z)))


def test_mean_and_weighted_average_the_members_probabilities_row_by_row():
    X, truth = crafted(3000)
    members = members_on(X["z"].to_numpy()[:2000], X["noise"].to_numpy()[:2000], truth[:2000])
    held = X.iloc[2000:]
    own = [model.predict_proba(held)[:, 1] for _, model in members]
    mean = composition.composite("mean", "binary", members, (held, truth[2000:]))
    assert mean.predict_proba(held)[:, 1] == pytest.approx((own[0] + own[1]) / 2, abs=1e-12)
    weighted = composition.composite("weighted", "binary", members, (held, truth[2000:]), [3, 1])
    assert weighted.predict_proba(held)[:, 1] == pytest.approx(0.75 * own[0] + 0.25 * own[1], abs=1e-12)
    with pytest.raises(ValueError, match="routed"):
        composition.composite("routed", "binary", members, (held, truth[2000:]))


def test_stacking_over_a_good_member_and_noise_weighs_the_noise_near_zero_and_beats_neither_by_much():
    X, truth = crafted(9000)
    members = members_on(X["z"].to_numpy()[:3000], X["noise"].to_numpy()[:3000], truth[:3000])
    train, held = slice(3000, 7000), slice(7000, 9000)
    stacked = composition.composite("stacking", "binary", members, (X.iloc[train], truth[train]))
    weights = composition.stack_weights(stacked, [21, 22])
    assert set(weights) == {"21", "22", "intercept"}
    assert weights["21"] > 5  # on the good member's probability
    assert abs(weights["22"]) < 0.1 * weights["21"]  # the noise member: next to nothing
    best_member = skm.roc_auc_score(truth[held], members[0][1].predict_proba(X.iloc[held])[:, 1])
    assert skm.roc_auc_score(truth[held], stacked.predict_proba(X.iloc[held])[:, 1]) == pytest.approx(
        best_member, abs=0.005
    )
    with pytest.raises(BadDataError, match="training rows"):
        composition.composite("stacking", "binary", members, (X.iloc[:0], truth[:0]))


def test_routed_answers_each_row_with_its_segments_model_and_the_generic_one_elsewhere():
    X, truth = crafted(400)
    X["merchant"] = np.where(np.arange(400) < 200, "a", "b")
    generic, own = (model for _, model in members_on(X["z"].to_numpy(), X["noise"].to_numpy(), truth))
    model = composition.routed("binary", "merchant", generic, {"b": own})
    scores = model.predict_proba(X)[:, 1]
    assert scores[:200] == pytest.approx(generic.predict_proba(X.iloc[:200])[:, 1])
    assert scores[200:] == pytest.approx(own.predict_proba(X.iloc[200:])[:, 1])
    assert list(model.classes_) == [0, 1]
