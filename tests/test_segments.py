"""Per-segment models against a generic one: planning, packing and the verdict on each segment's own rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from railyard_trainer import segments
from railyard_trainer.comparison import Outputs
from railyard_trainer.errors import BadDataError


def test_segments_under_min_rows_fall_back_and_too_many_is_bad_data_naming_the_count():
    trained, small = segments.plan({"ie": 900, "fr": 500, "de": 499, "es": 3}, min_rows=500, max_segments=10)
    assert trained == ["ie", "fr"]
    assert small == ["de", "es"]
    with pytest.raises(BadDataError, match="3 segments have at least 1 training rows, more than max_segments \\(2\\)"):
        segments.plan({"a": 1, "b": 2, "c": 3}, min_rows=1, max_segments=2)


def test_packing_spreads_rows_evenly_over_at_most_the_jobs_asked():
    rows = {f"m{i}": count for i, count in enumerate([1000, 800, 600, 400, 300, 200, 100, 100])}
    groups = segments.pack(rows, jobs=3)
    assert len(groups) == 3
    assert sorted(value for group in groups for value in group) == sorted(rows)
    loads = sorted(sum(rows[value] for value in group) for group in groups)
    assert loads == [1100, 1200, 1200]  # 3,500 rows over three jobs
    assert segments.pack({"only": 5}, jobs=4) == [["only"]]


def scored(truth: np.ndarray, noise: float, rng) -> Outputs:
    score = np.clip(truth * 0.5 + 0.25 + rng.normal(scale=noise, size=len(truth)), 0, 1)
    return Outputs((score >= 0.5).astype(int), score=score)


def test_a_segment_wins_only_when_its_interval_clears_the_generic_model():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 800)
    generic = scored(truth, 0.6, rng)
    strong = segments.versus_generic("ie", 12, 4000, "roc_auc", "binary", truth, scored(truth, 0.2, rng), generic, 1)
    assert strong["winner"] == "segment"
    assert strong["interval"]["low"] > 0
    assert strong["generic_score"] == pytest.approx(skm.roc_auc_score(truth, generic.score), abs=1e-12)
    assert set(strong) == {
        "segment",
        "run",
        "train_rows",
        "holdout_rows",
        "metric",
        "segment_score",
        "generic_score",
        "difference",
        "interval",
        "winner",
    }
    same = Outputs(generic.predicted, score=np.clip(generic.score + rng.normal(scale=0.001, size=800), 0, 1))
    tie = segments.versus_generic("fr", 13, 4000, "roc_auc", "binary", truth, same, generic, 1)
    assert tie["interval"]["low"] <= 0 <= tie["interval"]["high"]
    assert tie["winner"] == "generic"
    small = segments.versus_generic("es", None, 30, "roc_auc", "binary", truth, None, generic, 1)
    assert (small["run"], small["segment_score"], small["winner"]) == (None, None, "generic")


def test_routing_and_the_routed_score_over_the_whole_holdout():
    rng = np.random.default_rng(2)
    values = np.array(["ie"] * 400 + ["fr"] * 400)
    truth = rng.integers(0, 2, 800)
    generic = scored(truth, 0.6, rng)
    own = {"ie": scored(truth[values == "ie"], 0.1, rng), "fr": scored(truth[values == "fr"], 0.9, rng)}
    items = [
        segments.versus_generic(v, run, 1000, "roc_auc", "binary", truth[values == v], own[v], generic_part, 4)
        for v, run, generic_part in (
            ("ie", 21, Outputs(generic.predicted[:400], score=generic.score[:400])),
            ("fr", 22, Outputs(generic.predicted[400:], score=generic.score[400:])),
        )
    ]
    route = segments.routing(items, generic_run=20)
    assert route == {"ie": 21, "fr": 20}
    winners = {item["segment"] for item in items if item["winner"] == "segment"}
    combined = segments.routed_score("roc_auc", "binary", truth, values, generic, own, winners)
    expected = np.where(values == "ie", np.concatenate([own["ie"].score, np.zeros(400)]), generic.score)
    assert combined == pytest.approx(skm.roc_auc_score(truth, expected), abs=1e-12)
