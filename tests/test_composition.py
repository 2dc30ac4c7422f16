"""Compositions of trained runs: who may be composed for a holdout, and how their scores combine."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sklearn import metrics as skm

from railyard_trainer import composition


def spec(start: str, end: str, held: tuple[str, str] | None = None) -> dict:
    holdout = {"sampling_function": "RANDOM", "fraction": 0.2}
    if held:
        holdout = {"sampling_function": "DATE_RANGE", "date_range": {"start": held[0], "end": held[1]}}
    return {"data": {"date_range": {"start": start, "end": end}, "holdout_sampling": holdout}}


def test_a_runs_training_window_is_its_range_less_a_date_holdout():
    assert composition.training_windows(spec("2026-01-01", "2026-10-01", ("2026-09-01", "2026-10-01"))) == [
        (date(2026, 1, 1), date(2026, 9, 1))
    ]
    assert composition.training_windows(spec("2026-01-01", "2026-10-01", ("2026-05-01", "2026-06-01"))) == [
        (date(2026, 1, 1), date(2026, 5, 1)),
        (date(2026, 6, 1), date(2026, 10, 1)),
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


def test_mean_and_weighted_combine_the_holdout_scores_row_by_row():
    a, b = np.array([0.1, 0.8, 0.4]), np.array([0.3, 0.6, 0.9])
    assert composition.combine("mean", [a, b]) == pytest.approx((a + b) / 2)
    assert composition.combine("weighted", [a, b], [3, 1]) == pytest.approx(0.75 * a + 0.25 * b)
    matrices = [np.array([[0.2, 0.8], [0.5, 0.5]]), np.array([[0.4, 0.6], [0.1, 0.9]])]
    assert composition.combine("mean", matrices) == pytest.approx(np.array([[0.3, 0.7], [0.3, 0.7]]))
    with pytest.raises(ValueError, match="routed"):
        composition.combine("routed", [a, b])


def test_stacking_over_a_good_member_and_noise_weighs_the_noise_near_zero_and_beats_neither_by_much():
    rng = np.random.default_rng(0)
    n = 6000
    z = rng.normal(size=n)
    truth = rng.binomial(1, 1 / (1 + np.exp(-2 * z)))
    good = 1 / (1 + np.exp(-2 * z))
    noise = rng.random(n)
    train, held = slice(0, 4000), slice(4000, n)
    layer = composition.stack([good[train], noise[train]], truth[train])
    weights = composition.stack_weights(layer, [21, 22])
    assert weights["21"] == pytest.approx(1.0, abs=0.15)  # the good member is the true log-odds
    assert abs(weights["22"]) < 0.15
    stacked = composition.stacked_scores(layer, [good[held], noise[held]])
    best_member = skm.roc_auc_score(truth[held], good[held])
    assert skm.roc_auc_score(truth[held], stacked) == pytest.approx(best_member, abs=0.005)
