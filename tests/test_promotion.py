"""Champion against challenger on the challenger's holdout rows: crafted scores both ways, the
guardrails, the policy modes, and a real retrain promoted through the worker."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from railyard_trainer import comparison, promotion
from railyard_trainer.storage import open_store
from tests.conftest import train_queued
from tests.retraining import make_model
from training import demo
from training.models import Run
from training.retraining import services

ROWS = 4000
#: The day after the test dataset's last charge: a year of training rows and a month held out.
END_OF_DATA = datetime(2026, 11, 1, tzinfo=UTC)


class ScoreColumn:
    """A fitted binary "model" that reads its probability from a column (bent by `power`): crafted
    champions and challengers whose rankings and calibration the test chooses."""

    classes_ = np.array([0, 1])

    def __init__(self, column: str, power: float = 1.0):
        self.column, self.power = column, power

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(X[self.column].to_numpy(dtype=float), 1e-6, 1 - 1e-6) ** self.power
        return np.column_stack([1 - p, p])


def crafted(seed: int = 0) -> pd.DataFrame:
    """Labels drawn from `p` (the best possible, calibrated score), `weak`: a calibrated score that
    sees the signal through noise, and `segment`: a column to check segments on."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=ROWS)
    p = 1 / (1 + np.exp(-(2 * z - 1)))
    seen = z + rng.normal(scale=1.5, size=ROWS)
    weak = 1 / (1 + np.exp(-(0.75 * seen - 0.8)))
    return pd.DataFrame(
        {
            "p": p,
            "weak": weak,
            "segment": rng.choice(["ie", "fr", "de"], size=ROWS),
            "y": rng.binomial(1, p),
        }
    )


def compare(tmp_path, champion, challenger, held, policy=None) -> dict:
    """Store the champion where a trainer would find it and compare the challenger with it."""
    store = open_store(f"file://{tmp_path}/champion")
    buffer = io.BytesIO()
    joblib.dump(champion, buffer)
    store.put("model.joblib", buffer.getvalue(), "application/octet-stream")
    metadata = {"task": "binary", "classifier_features": [champion.column]}
    store.put("metadata.json", json.dumps(metadata).encode(), "application/json")
    challenge = {
        "champion_run": 1,
        "champion_uri": f"file://{tmp_path}/champion",
        "metric": "roc_auc",
        "policy": promotion.check_policy(policy),
    }
    return comparison.compare(challenge, fitted(challenger, held))


def fitted(model: ScoreColumn, held: pd.DataFrame) -> comparison.Challenger:
    return comparison.Challenger("binary", model, held, "y", [model.column], 1, 0.5, seed=7)


def test_a_clearly_better_challenger_is_promoted(tmp_path):
    held = crafted()
    result = compare(tmp_path, ScoreColumn("weak"), ScoreColumn("p"), held)
    assert result["decision"] == "promoted", result["reason"]
    assert result["interval"]["low"] > 0.05
    assert result["interval"]["resamples"] >= 1000
    assert result["difference"] == pytest.approx(result["challenger_score"] - result["champion_score"])
    # Both scores are scikit-learn's on the same rows.
    assert result["champion_score"] == pytest.approx(skm.roc_auc_score(held["y"], held["weak"]), abs=1e-12)
    assert result["challenger_score"] == pytest.approx(skm.roc_auc_score(held["y"], held["p"]), abs=1e-12)
    assert set(result) >= {
        "champion_run",
        "metric",
        "champion_score",
        "challenger_score",
        "difference",
        "interval",
        "guardrails",
        "decision",
        "reason",
    }


def test_a_challenger_better_by_noise_only_is_kept(tmp_path):
    held = crafted()
    # The champion's own score with a whisper of noise: find a draw that scores a little higher.
    for seed in range(50):
        held["noisy"] = np.clip(held["p"] + np.random.default_rng(seed).normal(scale=0.005, size=ROWS), 0, 1)
        if skm.roc_auc_score(held["y"], held["noisy"]) > skm.roc_auc_score(held["y"], held["p"]):
            break
    result = compare(tmp_path, ScoreColumn("p"), ScoreColumn("noisy"), held)
    assert result["difference"] > 0
    assert result["interval"]["low"] <= 0 <= result["interval"]["high"]
    assert result["decision"] == "kept"
    assert "includes zero" in result["reason"]


def test_a_better_ranking_with_much_worse_calibration_is_blocked_by_the_guardrail(tmp_path):
    held = crafted()
    result = compare(tmp_path, ScoreColumn("weak"), ScoreColumn("p", power=0.2), held)
    calibration = next(guard for guard in result["guardrails"] if guard["name"] == "calibration")
    assert result["interval"]["low"] > 0.05  # it ranks far better…
    assert calibration["challenger_brier"] > calibration["champion_brier"] + 0.01  # …and is far worse calibrated
    assert calibration["passed"] is False
    assert result["decision"] == "kept"
    assert "guardrail failed: calibration" in result["reason"]


def test_a_segment_worse_than_under_the_champion_blocks_promotion(tmp_path):
    held = crafted()
    # Better everywhere but in France, where the challenger's scores are shuffled.
    france = (held["segment"] == "fr").to_numpy()
    held["mixed"] = held["p"]
    held.loc[france, "mixed"] = np.random.default_rng(1).permutation(held.loc[france, "p"].to_numpy())
    policy = {"guardrails": {"segment_column": "segment", "segment_margin": 0.02, "brier_margin": None}}
    result = compare(tmp_path, ScoreColumn("weak"), ScoreColumn("mixed"), held, policy)
    segments = next(guard for guard in result["guardrails"] if guard["name"] == "segments")
    assert [entry["segment"] for entry in segments["worse"]] == ["fr"]
    assert segments["checked"] == 3
    assert result["decision"] == "kept"


@pytest.mark.parametrize(
    ("mode", "decision", "words"),
    [("approval", "awaiting_approval", "waiting for a person"), ("shadow", "shadow", "shadow mode")],
)
def test_approval_waits_and_shadow_records_only(tmp_path, mode, decision, words):
    result = compare(tmp_path, ScoreColumn("weak"), ScoreColumn("p"), crafted(), {"mode": mode})
    assert result["decision"] == decision
    assert words in result["reason"]
    assert "would be promoted" in result["reason"]


def test_a_champion_that_cannot_be_loaded_keeps_the_champion_and_says_why(tmp_path):
    challenge = {
        "champion_run": 1,
        "champion_uri": f"file://{tmp_path}/nothing-here",
        "metric": "roc_auc",
        "policy": promotion.check_policy(None),
    }
    result = comparison.compare(challenge, fitted(ScoreColumn("p"), crafted()))
    assert result["decision"] == "kept"
    assert "could not be scored" in result["reason"]


def test_the_fast_bootstrap_auc_is_scikit_learns_under_the_same_weights():
    held = crafted()
    truth = held["y"].to_numpy()
    score = np.round(held["p"].to_numpy(), 2)  # ties, which count a half
    weights = np.bincount(np.random.default_rng(3).integers(0, ROWS, ROWS), minlength=ROWS).astype(float)
    fast = comparison._FastAUC(truth, score)
    assert fast(weights) == pytest.approx(skm.roc_auc_score(truth, score, sample_weight=weights), abs=1e-12)
    assert fast(np.ones(ROWS)) == pytest.approx(skm.roc_auc_score(truth, score), abs=1e-12)


# A real retrain, compared by the real trainer and promoted by the worker.


@pytest.fixture(scope="module")
def charges_request(tmp_path_factory) -> dict:
    """The demo's request over 60,000 charges: enough frauds in a month's holdout to tell models apart."""
    paths = demo.write_dataset(tmp_path_factory.mktemp("charges"), n_rows=60_000, seed=5)
    request = demo.demo_request(paths["charges"], paths["merchants"])
    request["train"]["custom_params"] = {"max_iter": 30}
    return request


@pytest.mark.django_db
def test_a_retrain_that_wins_on_the_same_rows_is_promoted_and_its_scores_match_sklearn(
    alice, workflows, charges_request
):
    fraud_request = copy.deepcopy(charges_request)
    fraud_request["data"]["id_column"] = "charge_id"
    fraud_request["train"]["classifier_features"] = ["card_type"]  # a weak first champion
    model = make_model(alice, fraud_request)
    first = train_queued(services.retrain(model, alice, END_OF_DATA))
    model.refresh_from_db()
    assert model.champion_id == first.pk

    model.request["train"]["classifier_features"] = ["amount", "country", "card_present", "customer_age_days"]
    model.save()
    second = train_queued(services.retrain(model, alice, END_OF_DATA))
    assert second.spec["challenge"]["champion_run"] == first.pk
    result = second.comparison
    assert result["decision"] == "promoted", result["reason"]
    model.refresh_from_db()
    assert model.champion_id == second.pk
    move = model.promotions.first()
    assert (move.actor, move.previous_champion_id, move.reason) == ("railyard", first.pk, result["reason"])
    assert (move.champion_score, move.challenger_score) == (result["champion_score"], result["challenger_score"])
    assert result["challenger_score"] == pytest.approx(second.metrics["roc_auc"], abs=1e-12)

    # Independently: the champion's model on the challenger's holdout rows, by their ids.
    held_ids = pd.read_parquet(io.BytesIO(open_store(second.artifact_uri).get("holdout_scores.parquet")))["row_id"]
    charges = pd.read_parquet(fraud_request["data"]["features"][0]["path"])
    rows = charges.set_index("charge_id").loc[held_ids.to_numpy()]
    champion = joblib.load(io.BytesIO(open_store(first.artifact_uri).get("model.joblib")))
    expected = skm.roc_auc_score(rows["is_fraud"], champion.predict_proba(rows[["card_type"]])[:, 1])
    assert result["champion_score"] == pytest.approx(expected, abs=1e-12)
    assert Run.objects.filter(model=model).count() == 2


class PredictColumn:
    """A fitted regressor that answers with a column."""

    def __init__(self, column: str):
        self.column = column

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy(dtype=float)


class ClassColumn:
    """A fitted classifier of three classes, sure of the class a column names."""

    classes_ = np.array(["a", "b", "c"])

    def __init__(self, column: str):
        self.column = column

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        chosen = X[self.column].to_numpy()
        return np.column_stack([(chosen == c).astype(float) * 0.9 + 0.05 for c in self.classes_])


def compare_task(tmp_path, task: str, metric: str, champion, challenger, held: pd.DataFrame) -> dict:
    store = open_store(f"file://{tmp_path}/champion-{task}")
    buffer = io.BytesIO()
    joblib.dump(champion, buffer)
    store.put("model.joblib", buffer.getvalue(), "application/octet-stream")
    store.put("metadata.json", json.dumps({"task": task, "classifier_features": [champion.column]}).encode(), "x")
    challenge = {
        "champion_run": 1,
        "champion_uri": f"file://{tmp_path}/champion-{task}",
        "metric": metric,
        "policy": promotion.check_policy(None),
    }
    fitted = comparison.Challenger(task, challenger, held, "y", [challenger.column], None, 0.5, seed=3)
    return comparison.compare(challenge, fitted)


@pytest.mark.parametrize(("metric", "better"), [("r2", "higher"), ("rmse", "lower")])
def test_a_regression_challenger_wins_in_its_metrics_own_direction(tmp_path, metric, better):
    rng = np.random.default_rng(0)
    y = rng.normal(size=ROWS)
    held = pd.DataFrame({"y": y, "close": y + rng.normal(scale=0.3, size=ROWS), "far": y + rng.normal(size=ROWS)})
    result = compare_task(tmp_path, "regression", metric, PredictColumn("far"), PredictColumn("close"), held)
    assert result["decision"] == "promoted", result["reason"]
    assert result["higher_is_better"] is (better == "higher")
    assert result["difference"] > 0  # positive: the challenger is better, whichever way the metric runs
    expected = {"r2": skm.r2_score(y, held["far"]), "rmse": skm.root_mean_squared_error(y, held["far"])}[metric]
    assert result["champion_score"] == pytest.approx(expected, abs=1e-12)


def test_a_multiclass_challenger_is_compared_by_macro_f1(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], size=ROWS)
    wrong = rng.random(ROWS) < 0.4
    guess = np.where(wrong, rng.choice(["a", "b", "c"], size=ROWS), y)
    held = pd.DataFrame({"y": y, "right": y, "guess": guess})
    result = compare_task(tmp_path, "multiclass", "macro_f1", ClassColumn("guess"), ClassColumn("right"), held)
    assert result["decision"] == "promoted", result["reason"]
    assert result["challenger_score"] == pytest.approx(1.0)
    assert result["champion_score"] == pytest.approx(skm.f1_score(y, guess, average="macro"), abs=1e-12)


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("regression", "rmse"),
        ("regression", "mae"),
        ("regression", "r2"),
        ("binary", "brier"),
        ("binary", "accuracy"),
        ("binary", "roc_auc"),
    ],
)
def test_the_fast_weighted_metrics_are_scikit_learns(task, name):
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, ROWS) if task == "binary" else rng.normal(size=ROWS)
    score = np.clip(truth * 0.6 + rng.normal(scale=0.4, size=ROWS), 0, 1) if task == "binary" else None
    predicted = (score >= 0.5).astype(int) if task == "binary" else truth + rng.normal(size=ROWS)
    out = comparison.Outputs(predicted, score=score)
    weights = np.bincount(rng.integers(0, ROWS, ROWS), minlength=ROWS).astype(float)
    fast = comparison._weighted(name, task, truth, out)
    assert fast(weights) == pytest.approx(comparison.metric(name, task, truth, out, weights), abs=1e-10)
