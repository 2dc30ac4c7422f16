"""What a trained model yields: metrics for each task, holdout scores that join back to their
records, models that load without Railyard, and progress while it trains."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import EntryPoint
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from railyard_trainer import train
from railyard_trainer.errors import BadDataError
from railyard_trainer.storage import FileStore
from railyard_trainer.workflows import Workflow, registry
from tests.trainer_runs import run_trainer, spec_dict


def task_frame(tmp_path: Path, label: np.ndarray | pd.Series, x: np.ndarray) -> Path:
    days = pd.date_range("2026-01-01", periods=len(x), freq="h")
    path = tmp_path / "task.parquet"
    pd.DataFrame({"day": days, "x": x, "colour": np.resize(["red", "green", "blue"], len(x)), "y": label}).to_parquet(
        path
    )
    return path


def random_split_spec(path: Path, workflow: str) -> dict:
    raw = spec_dict(path, holdout_sampling={"sampling_function": "RANDOM", "fraction": 0.3, "seed": 1})
    del raw["data"]["date_range"]
    raw["train"]["workflow_name"] = workflow
    return raw


def test_it_evaluates_a_multiclass_model(tmp_path):
    from training import charts

    rng = np.random.default_rng(4)
    x = rng.normal(size=900)
    label = np.select([x < -0.5, x < 0.5], ["low", "mid"], "high")
    out = tmp_path / "out"

    metrics = train.run(random_split_spec(task_frame(tmp_path, label, x), "random_forest"), FileStore(out))

    assert set(metrics) == {"accuracy", "macro_f1", "log_loss"}
    assert metrics["accuracy"] > 0.8
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["task"] == "multiclass"
    assert evaluation["charts"]["confusion_matrix"]["labels"] == ["high", "low", "mid"]
    assert [f.layout.title.text for f in charts.figures(evaluation)] == [
        "Confusion matrix",
        "F1 by class",
        "Feature importance — permutation (accuracy)",
    ]
    scores = pd.read_parquet(out / "holdout_scores.parquet")
    assert list(scores.columns) == ["row_id", "day", "label", "prediction", "score_high", "score_low", "score_mid"]
    assert (scores["label"] == scores["prediction"]).mean() == pytest.approx(metrics["accuracy"])
    probabilities = scores[["score_high", "score_low", "score_mid"]]
    assert probabilities.sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert (probabilities.idxmax(axis=1).str.removeprefix("score_") == scores["prediction"]).all()


def test_it_evaluates_a_regression_model(tmp_path):
    from sklearn.metrics import mean_squared_error

    from training import charts

    rng = np.random.default_rng(5)
    x = rng.normal(size=600)
    out = tmp_path / "out"
    raw = random_split_spec(task_frame(tmp_path, 4 * x + rng.normal(scale=0.1, size=600), x), "linear_regression")

    metrics = train.run(raw, FileStore(out))

    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.99
    scores = pd.read_parquet(out / "holdout_scores.parquet")
    assert metrics["rmse"] == pytest.approx(mean_squared_error(scores["label"], scores["prediction"]) ** 0.5)
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert [f.layout.title.text for f in charts.figures(evaluation)] == [
        "Predicted vs actual",
        "Residuals",
        "Feature importance — permutation (r2)",
    ]


def test_a_regression_workflow_refuses_a_text_label(tmp_path):
    x = np.arange(60.0)
    raw = random_split_spec(task_frame(tmp_path, np.resize(["a", "b"], 60), x), "linear_regression")
    with pytest.raises(BadDataError, match="a regression label must be numeric"):
        train.run(raw, FileStore(tmp_path / "out"))


def fraud_like(n: int = 4000, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    label = np.where(x + rng.normal(scale=1.5, size=n) > 2.0, "fraud", "ok")
    return pd.DataFrame({"x": x, "z": rng.normal(size=n)}), pd.Series(label, name="y")


def test_operating_point_metrics_equal_an_independent_computation_with_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import precision_score, roc_curve

    from railyard_trainer.evaluation import evaluate

    X, y = fraud_like()
    model = LogisticRegression().fit(X, y)
    metrics = evaluate("binary", model, X, y, seed=0, positive="fraud").metrics

    truth = (y == "fraud").to_numpy()
    score = model.predict_proba(X)[:, list(model.classes_).index("fraud")]
    fpr, tpr, _ = roc_curve(truth, score, drop_intermediate=False)
    for share, key in ((0.01, "1pct"), (0.05, "5pct")):
        assert metrics[f"recall_at_fpr_{key}"] == pytest.approx(
            max(t for f, t in zip(fpr, tpr, strict=True) if f <= share)
        )
        top = pd.Series(score).sort_values(ascending=False, kind="stable").index[: int(np.ceil(share * len(score)))]
        assert metrics[f"precision_at_top_{key}"] == pytest.approx(precision_score(truth[top], np.ones(len(top))))
    assert 0 < metrics["recall_at_fpr_1pct"] < metrics["recall_at_fpr_5pct"] <= 1


def test_the_positive_class_and_the_decision_threshold_are_honoured(tmp_path):
    from sklearn.metrics import precision_score, recall_score

    X, y = fraud_like()
    days = pd.date_range("2026-01-01", periods=len(X), freq="h")
    frame = pd.DataFrame({"day": days, "x": X["x"], "colour": "red", "y": y})
    path = tmp_path / "fraud.parquet"
    frame.to_parquet(path)
    raw = random_split_spec(path, "logistic_regression")
    raw["train"].update(positive_class="fraud", decision_threshold=0.3)

    metrics = train.run(raw, FileStore(tmp_path / "out"))

    scores = pd.read_parquet(tmp_path / "out" / "holdout_scores.parquet")
    truth, predicted = scores["label"] == "fraud", scores["score"] >= 0.3
    assert metrics["precision"] == pytest.approx(precision_score(truth, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(truth, predicted))
    summary = json.loads((tmp_path / "out" / "metadata.json").read_text())["data_summary"]
    assert (summary["positive_class"], summary["decision_threshold"]) == ("fraud", 0.3)
    assert summary["holdout_positive_rate"] == pytest.approx(truth.mean())

    raw["train"].pop("positive_class")  # by default the second in sorted order: "ok"
    default = train.run(raw, FileStore(tmp_path / "default"))
    assert default["recall"] > 0.9 > metrics["recall"]

    raw["train"]["positive_class"] = "chargeback"
    with pytest.raises(
        BadDataError, match=r"train.positive_class 'chargeback' is not one of the label's classes \('fraud', 'ok'\)"
    ):
        train.run(raw, FileStore(tmp_path / "refused"))


def test_a_classification_workflow_refuses_a_continuous_label(tmp_path, small):
    frame = pd.read_parquet(small)
    frame["y"] = frame["x"] * 3.7 + 0.01
    frame.to_parquet(small)

    with pytest.raises(
        BadDataError, match=r"label 'y' has \d+ distinct decimal values: it is a measurement, not classes"
    ):
        train.run(random_split_spec(small, "logistic_regression"), FileStore(tmp_path / "out"))


class MarginOnlyWorkflow(Workflow):
    """A classifier without predict_proba (a linear SVM)."""

    name = "margin_only"
    task = "classification"

    def train(self, training_dataframe, holdout_dataframe):
        from sklearn.svm import LinearSVC

        return LinearSVC().fit(training_dataframe[self.classifier_features], training_dataframe[self.label])


def test_a_classifier_without_probabilities_still_gets_the_metrics_that_need_none(tmp_path, small, monkeypatch):
    entry = EntryPoint("margin_only", f"{__name__}:MarginOnlyWorkflow", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry])
    raw = random_split_spec(small, "margin_only")
    raw["train"]["classifier_features"] = ["x"]

    metrics = train.run(raw, FileStore(tmp_path / "out"))

    assert set(metrics) == {"accuracy", "precision", "recall", "f1"}
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert evaluation["notes"] == [
        "the estimator (LinearSVC) has no predict_proba: ROC AUC, average precision, log loss, Brier score, "
        "the operating points and the curves need probabilities and are left out"
    ]


#: scikit-learn, pandas and joblib, and what they import.


SCORING_LIBRARIES = (
    "sklearn",
    "scikit_learn.libs",
    "joblib",
    "cloudpickle",
    "threadpoolctl.py",
    "scipy",
    "scipy.libs",
    "numpy",
    "numpy.libs",
    "pandas",
    "dateutil",
    "six.py",
    "tzdata",
    "narwhals",
)


SCORE_ELSEWHERE = """
import importlib.util, json, sys
import joblib, pandas as pd
for absent in ("railyard_trainer", "django", "pyarrow"):
    assert importlib.util.find_spec(absent) is None, f"{absent} is importable here"
model = joblib.load(sys.argv[1])
rows = pd.DataFrame({"x": [0.5, -1.0, 2.0], "colour": ["red", None, "purple"]})
print(json.dumps(model.predict_proba(rows)[:, 1].round(9).tolist()))
"""


def test_a_model_loads_and_scores_in_a_fresh_virtualenv_without_railyard(tmp_path, small):
    import venv

    import sklearn

    code, out = run_trainer(tmp_path, spec_dict(small))
    assert code == 0, (tmp_path / "log.txt").read_text()
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    # Only scikit-learn, pandas and joblib (the pinned ones, with what they import), not Railyard.
    installed = Path(sklearn.__file__).parent.parent
    only = tmp_path / "only"
    only.mkdir()
    for name in SCORING_LIBRARIES:
        if (installed / name).exists():
            (only / name).symlink_to(installed / name)
    site_packages = next((fresh / "lib").glob("python3*/site-packages"))
    (site_packages / "libraries.pth").write_text(f"{only}\n")

    result = subprocess.run(
        [str(fresh / "bin" / "python"), "-c", SCORE_ELSEWHERE, str(out / "model.joblib")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    rows = pd.DataFrame({"x": [0.5, -1.0, 2.0], "colour": ["red", None, "purple"]})
    here = joblib.load(out / "model.joblib").predict_proba(rows)[:, 1].round(9).tolist()
    assert json.loads(result.stdout) == here


def test_holdout_scores_join_back_to_their_records_by_id_or_by_position(tmp_path):
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(size=n)
    source = pd.DataFrame(
        {
            "charge_id": [f"ch_{i:05d}" for i in rng.permutation(n)],
            "x": x,
            "colour": rng.choice(["red", "blue"], size=n),
            "y": (x + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )
    path = tmp_path / "charges.parquet"
    source.to_parquet(path)
    raw = random_split_spec(path, "logistic_regression")
    raw["data"]["features"][0]["names"] = ["charge_id", "x", "colour", "y"]
    raw["data"]["features"][0].pop("date_column")
    raw["data"]["filters"] = [{"feature_name": "colour", "predicate": "Eq", "feature_value": "red"}]
    raw["data"]["id_column"] = "charge_id"

    train.run(raw, FileStore(tmp_path / "by_id"))
    raw["data"].pop("id_column")
    train.run(raw, FileStore(tmp_path / "by_position"))

    by_id = pd.read_parquet(tmp_path / "by_id" / "holdout_scores.parquet")
    joined = by_id.merge(source, left_on="row_id", right_on="charge_id", validate="one_to_one")
    assert len(joined) == len(by_id) > 0
    assert (joined["label"] == joined["y"]).all()
    assert (joined["colour"] == "red").all()
    by_position = pd.read_parquet(tmp_path / "by_position" / "holdout_scores.parquet")
    records = source.iloc[by_position["row_id"]]
    assert (records["y"].to_numpy() == by_position["label"].to_numpy()).all()
    assert (records["charge_id"].to_numpy() == by_id["row_id"].to_numpy()).all()  # the same rows, the same order


@pytest.mark.parametrize(
    ("workflow", "line"), [("gradient_boosting", "[5/5] "), ("neural_network", "Iteration 5, loss")]
)
def test_iterative_estimators_report_each_iteration_in_the_log(tmp_path, small, capsys, workflow, line):
    raw = random_split_spec(small, workflow)
    raw["train"]["custom_params"] = {"max_iter": 5}

    train.run(raw, FileStore(tmp_path / "out"))

    log = capsys.readouterr().out
    training = log.split("stage=train started")[1].split("stage=train done")[0]
    assert line in training
    if workflow == "neural_network":
        assert "train: up to 5 iterations" in training
