"""The trainer on its own: data, filters, holdout strategies, workflows, evaluation, artifacts, exit codes."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from railyard_trainer import cli, data, holdout, parameters, train
from railyard_trainer.errors import EXIT_BAD_DATA, EXIT_CRASH, BadDataError
from railyard_trainer.spec import TrainSpec
from railyard_trainer.storage import FileStore, sha256_hex
from railyard_trainer.workflows import Workflow, get_workflow, registry
from railyard_trainer.workflows.builtin import ordinal_preprocessor
from tests.trainer_runs import run_trainer, spec_dict


def load_restricted(raw: dict) -> pd.DataFrame:
    spec = TrainSpec.from_dict(raw)
    return data.restrict(data.load(spec), spec)


def test_it_keeps_dates_in_a_half_open_range(small):
    frame = load_restricted(spec_dict(small))
    assert frame["day"].min() == pd.Timestamp("2026-01-01")
    assert frame["day"].max() == pd.Timestamp("2026-02-28")  # 2026-03-01 itself is excluded
    assert len(frame) == 59


@pytest.mark.parametrize(
    ("predicate", "value", "expected"),
    [
        ("Eq", 2, [2]),
        ("NotEq", 2, [1, 3, 4]),
        ("Gt", 2, [3, 4]),
        ("GtEq", 2, [2, 3, 4]),
        ("Lt", 2, [1]),
        ("LtEq", 2, [1, 2]),
        ("IsIn", [1, 4], [1, 4]),
        ("NotIn", [1, 4], [2, 3]),
    ],
)
def test_it_applies_each_comparison_predicate(predicate, value, expected):
    frame = pd.DataFrame({"n": [1, 2, 3, 4]})
    flt = data.Filter("n", predicate, value)
    assert frame.loc[data.apply_filter(frame, flt, "f"), "n"].tolist() == expected


def test_it_applies_null_predicates():
    frame = pd.DataFrame({"c": ["a", None, "b", None]})
    assert data.apply_filter(frame, data.Filter("c", "IsNull"), "f").tolist() == [False, True, False, True]
    assert data.apply_filter(frame, data.Filter("c", "NotNull"), "f").tolist() == [True, False, True, False]


def test_it_compares_dates_with_date_strings(small):
    raw = spec_dict(small, filters=[{"feature_name": "day", "predicate": "Lt", "feature_value": "2026-01-05"}])
    assert len(load_restricted(raw)) == 4


def test_it_explains_a_filter_of_the_wrong_type(small):
    raw = spec_dict(small, filters=[{"feature_name": "colour", "predicate": "Gt", "feature_value": 3}])
    with pytest.raises(BadDataError, match=r"data.filters\[0\]: cannot compare 'colour'"):
        load_restricted(raw)


def test_it_fails_when_no_rows_are_left(small):
    raw = spec_dict(small, filters=[{"feature_name": "x", "predicate": "Gt", "feature_value": 1000}])
    with pytest.raises(BadDataError, match=r"no rows left after applying the date range and filters \(76 rows"):
        load_restricted(raw)


def test_it_fails_on_a_missing_column(small):
    raw = spec_dict(small)
    raw["data"]["features"][0]["names"].append("merchant")
    with pytest.raises(BadDataError, match=r"column\(s\) merchant not found in .*small.parquet"):
        load_restricted(raw)


def test_it_never_trains_on_rows_after_the_holdout_starts(small):
    raw = spec_dict(small)
    raw["data"]["date_range"]["end"] = "2026-03-11"
    raw["data"]["holdout_sampling"]["date_range"] = {"start": "2026-02-01", "end": "2026-02-15"}
    spec = TrainSpec.from_dict(raw)
    training, held = holdout.split(load_restricted(raw), spec)
    assert training["day"].max() < pd.Timestamp("2026-02-01")
    assert held["day"].min() == pd.Timestamp("2026-02-01")
    assert held["day"].max() == pd.Timestamp("2026-02-14")
    # rows after the holdout (Feb 15 – Mar 10) are in neither set
    assert len(training) + len(held) == 31 + 14


def test_it_splits_randomly_with_a_seed_and_stratification(small):
    raw = spec_dict(
        small, holdout_sampling={"sampling_function": "RANDOM", "fraction": 0.25, "seed": 7, "stratify": True}
    )
    frame = load_restricted(raw)
    training, held = holdout.split(frame, TrainSpec.from_dict(raw))
    again, _ = holdout.split(frame, TrainSpec.from_dict(raw))
    assert len(held) == round(len(frame) * 0.25)
    assert training["day"].tolist() == again["day"].tolist()
    assert abs(held["y"].mean() - frame["y"].mean()) < 0.1


def test_it_joins_a_second_source_on_its_key(tmp_path):
    pd.DataFrame({"id": [1, 2, 3], "m": [10, 20, 10], "y": [0, 1, 0]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"m": [10, 20], "risk": [0.1, 0.9]}).to_csv(tmp_path / "b.csv", index=False)
    spec = TrainSpec.from_dict(
        {
            "data": {
                "features": [
                    {
                        "names": ["id", "m", "y"],
                        "source": "file",
                        "format": "parquet",
                        "path": str(tmp_path / "a.parquet"),
                    },
                    {
                        "names": ["m", "risk"],
                        "source": "file",
                        "format": "csv",
                        "path": str(tmp_path / "b.csv"),
                        "join_on": "m",
                    },
                ]
            },
            "train": {"workflow_name": "w", "classifier_features": ["risk"], "label": "y"},
        }
    )
    assert data.load(spec)["risk"].tolist() == [0.1, 0.9, 0.1]


def test_it_refuses_a_join_key_that_is_not_unique(tmp_path):
    pd.DataFrame({"m": [1, 2], "y": [0, 1]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"m": [1, 1], "risk": [0.1, 0.2]}).to_parquet(tmp_path / "b.parquet")
    spec = TrainSpec.from_dict(
        {
            "data": {
                "features": [
                    {"names": ["m", "y"], "source": "file", "format": "parquet", "path": str(tmp_path / "a.parquet")},
                    {
                        "names": ["m", "risk"],
                        "source": "file",
                        "format": "parquet",
                        "path": str(tmp_path / "b.parquet"),
                        "join_on": ["m"],
                    },
                ]
            },
            "train": {"workflow_name": "w", "classifier_features": ["risk"], "label": "y"},
        }
    )
    with pytest.raises(BadDataError, match=r"join key \['m'\] is not unique"):
        data.load(spec)


@pytest.mark.parametrize("name", ["logistic_regression", "gradient_boosting", "random_forest", "neural_network"])
def test_each_classifier_handles_categories_and_missing_values(name):
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "colour": rng.choice(["red", "green", "blue", None], size=n),
            "flag": rng.random(n) < 0.5,
        }
    )
    frame["y"] = ((frame["x"].fillna(0) > 0) ^ (frame["colour"] == "red")).astype(int)
    workflow = get_workflow(name)(["x", "colour", "flag"], "y", {"max_iter": 300}, seed=0)
    model = workflow.train(frame, frame)
    unseen = pd.DataFrame({"x": [np.nan], "colour": ["purple"], "flag": [True]})
    assert model.predict_proba(unseen).shape == (1, 2)
    assert (model.predict(frame[["x", "colour", "flag"]]) == frame["y"]).mean() > 0.7


@pytest.mark.parametrize("name", ["linear_regression", "gradient_boosting_regressor"])
def test_each_regressor_fits_a_numeric_label(name):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=300), "colour": rng.choice(["a", "b"], size=300)})
    frame["y"] = 3 * frame["x"] + (frame["colour"] == "a") * 2
    model = get_workflow(name)(["x", "colour"], "y", {}, seed=0).train(frame, frame)
    assert np.corrcoef(model.predict(frame[["x", "colour"]]), frame["y"])[0, 1] > 0.95


def test_it_passes_estimator_parameters_from_custom_params():
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [0, 1] * 20})
    model = get_workflow("gradient_boosting")(["x"], "y", {"max_iter": 7, "team": "risk"}).train(frame, frame)
    assert model.named_steps["model"].max_iter == 7


def test_the_cli_writes_every_artifact_with_checksums(tmp_path, small):
    code, out = run_trainer(tmp_path, spec_dict(small))
    log = (tmp_path / "log.txt").read_text()

    assert code == 0, log
    manifest = json.loads((out / "manifest.json").read_text())["artifacts"]
    names = {a["name"] for a in manifest}
    assert names == {
        "spec.json",
        "model.joblib",
        "metadata.json",
        "metrics.json",
        "evaluation.json",
        "holdout_scores.parquet",
    }
    for entry in manifest:
        assert sha256_hex((out / entry["name"]).read_bytes()) == entry["sha256"]
    scores = pd.read_parquet(out / "holdout_scores.parquet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(scores.columns) == ["row_id", "day", "label", "score"]
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(scores["label"], scores["score"]))
    assert set(metrics) == {
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "recall_at_fpr_1pct",
        "recall_at_fpr_5pct",
        "precision_at_top_1pct",
        "precision_at_top_5pct",
    }
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert {"roc", "pr", "calibration", "score_histogram", "confusion_matrix", "feature_importance"} <= set(
        evaluation["charts"]
    )
    metadata = json.loads((out / "metadata.json").read_text())
    stage_seconds = metadata["data_summary"]["stage_seconds"]
    assert set(stage_seconds) == {"load", "filter", "split", "train", "evaluate"}
    assert all(0 <= seconds < 60 for seconds in stage_seconds.values())
    assert metadata["task"] == "binary"
    assert metadata["data_summary"]["train_rows"] == 31
    assert metadata["data_summary"]["holdout_rows"] == 28
    assert {"scikit-learn", "pandas", "numpy", "python"} <= set(metadata["libraries"])
    assert len(metadata["data_fingerprint"]) == 64
    model = joblib.load(out / "model.joblib")
    assert model.predict_proba(pd.read_parquet(small)[["x", "colour"]]).shape[1] == 2
    for stage in ("load", "filter", "split", "train", "evaluate", "serialize"):
        assert f"stage={stage} done duration=" in log


def test_the_cli_fingerprint_is_stable_across_runs(tmp_path, small):
    fingerprints = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        _, out = run_trainer(tmp_path / attempt, spec_dict(small))
        fingerprints.append(json.loads((out / "metadata.json").read_text())["data_fingerprint"])
    assert fingerprints[0] == fingerprints[1]


def test_the_cli_exits_with_the_bad_data_code_when_the_holdout_has_one_class(tmp_path, small):
    frame = pd.read_parquet(small)
    frame.loc[frame["day"] >= "2026-02-01", "y"] = 0
    frame.to_parquet(small)

    code, out = run_trainer(tmp_path, spec_dict(small))

    assert code == EXIT_BAD_DATA
    error = json.loads((out / "error.json").read_text())
    assert error["kind"] == "bad_data"
    assert "single class (0) in the holdout" in error["message"]
    assert not (out / "manifest.json").exists()


def test_the_cli_exits_with_the_bad_data_code_for_an_invalid_estimator_parameter(tmp_path, small):
    raw = spec_dict(small)
    raw["train"]["custom_params"] = {"C": -1}
    code, out = run_trainer(tmp_path, raw)
    assert code == EXIT_BAD_DATA
    assert "custom_params" in json.loads((out / "error.json").read_text())["message"]


def test_a_crash_is_told_apart_from_bad_data(tmp_path, small, monkeypatch, capsys):
    def explode(raw, store):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(train, "run", explode)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec_dict(small)))

    code = cli.main(["train", "--spec", str(spec_file), "--out", f"file://{tmp_path / 'out'}"])

    assert code == EXIT_CRASH
    error = json.loads((tmp_path / "out" / "error.json").read_text())
    assert error == {"kind": "crash", "message": "ZeroDivisionError: division by zero"}
    assert "Traceback" in capsys.readouterr().err


def test_the_store_writes_files_whole(tmp_path):
    tmp_path = tmp_path / "store"
    store = FileStore(tmp_path)
    stored = store.put("metrics.json", b'{"a": 1}', "application/json")
    assert stored.sha256 == sha256_hex(b'{"a": 1}')
    assert stored.uri == f"file://{tmp_path}/metrics.json"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind
    with pytest.raises(ValueError, match="invalid artifact name"):
        store.put("../escape", b"", "text/plain")


class ExtraTreesWorkflow(Workflow):
    """The README's example of a team's own workflow."""

    name = "extra_trees"
    task = "classification"
    default_params = {"n_estimators": 50}

    def train(self, training_dataframe, holdout_dataframe):
        params = {**self.default_params, **self.custom_params}
        model = Pipeline(
            [
                ("preprocess", ordinal_preprocessor(training_dataframe, self.classifier_features)),
                ("model", ExtraTreesClassifier(random_state=self.seed, **params)),
            ]
        )
        return model.fit(training_dataframe[self.classifier_features], training_dataframe[self.label])


def test_a_workflow_registered_through_entry_points_is_found_and_trained(tmp_path, small, monkeypatch):
    entry = EntryPoint("extra_trees", f"{__name__}:ExtraTreesWorkflow", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry])
    raw = spec_dict(small)
    raw["train"]["workflow_name"] = "extra_trees"
    raw["train"]["custom_params"] = {"n_estimators": 20}

    metrics = train.run(raw, FileStore(tmp_path / "out"))

    assert [w["name"] for w in registry.catalogue()] == ["extra_trees"]
    model = joblib.load(tmp_path / "out" / "model.joblib")
    assert model.named_steps["model"].n_estimators == 20
    assert 0 <= metrics["roc_auc"] <= 1


def test_a_new_attempt_clears_what_an_earlier_attempt_concluded(tmp_path, small):
    store = FileStore(tmp_path / "out")
    store.put("error.json", b'{"kind": "crash", "message": "old"}', "application/json")

    train.run(spec_dict(small), store)

    assert not store.exists("error.json")
    assert store.exists("manifest.json")


def test_a_workflow_that_cannot_be_imported_is_skipped_and_fails_only_its_own_runs(
    tmp_path, small, monkeypatch, capsys
):
    good = EntryPoint("extra_trees", f"{__name__}:ExtraTreesWorkflow", registry.GROUP)
    broken = EntryPoint("broken", "railyard_no_such_package.models:Broken", registry.GROUP)
    not_a_workflow = EntryPoint("not_a_workflow", "json:dumps", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken, good, not_a_workflow])

    assert [w["name"] for w in registry.catalogue()] == ["extra_trees"]
    warnings = capsys.readouterr().err
    assert "warning: workflow 'broken' skipped: railyard_no_such_package.models:Broken cannot be imported: " in warnings
    assert "No module named 'railyard_no_such_package'" in warnings
    assert "warning: workflow 'not_a_workflow' skipped: json:dumps is not a Workflow subclass" in warnings

    raw = spec_dict(small)
    raw["train"]["workflow_name"] = "extra_trees"
    assert 0 <= train.run(raw, FileStore(tmp_path / "good"))["roc_auc"] <= 1
    raw["train"]["workflow_name"] = "broken"
    with pytest.raises(BadDataError, match=r"workflow 'broken' is installed but unusable: .*No module named"):
        train.run(raw, FileStore(tmp_path / "broken"))


def test_the_trainer_refuses_parameters_its_workflow_does_not_declare(tmp_path, small):
    raw = spec_dict(small)
    raw["train"]["custom_params"] = {"CC": 1.0, "max_iter": "ten"}

    with pytest.raises(BadDataError) as refused:
        train.run(raw, FileStore(tmp_path / "out"))

    assert "train.custom_params.CC: `CC` is not a parameter of logistic_regression; did you mean `C`?" in str(
        refused.value
    )
    assert 'train.custom_params.max_iter: `max_iter` must be an integer ≥ 0 (got "ten").' in str(refused.value)


class DeclaredWorkflow(ExtraTreesWorkflow):
    parameters: ClassVar[dict] = {
        "n_estimators": {"type": "integer", "min": 1, "default": 100},
        "criterion": {"type": "string", "choices": ["gini", "entropy"], "default": "gini"},
        "max_features": {"accepts": [{"type": "float", "min": 0, "max": 1, "closed": "right"}, {"type": "null"}]},
    }


def test_a_custom_workflow_may_declare_its_parameters_and_an_undeclared_one_takes_anything():
    declared = DeclaredWorkflow.describe()["parameters"]
    assert declared["n_estimators"] == {"default": 100, "accepts": [{"type": "integer", "min": 1}]}
    assert parameters.problems("trees", declared, {"n_estimators": 0, "criterion": "gini", "max_features": None}) == {
        "train.custom_params.n_estimators": "`n_estimators` must be an integer ≥ 1 (got 0)."
    }
    assert parameters.problems("trees", declared, {"max_features": 1.0, "n_estimators": 5}) == {}
    assert parameters.problems("trees", declared, {"max_features": 0.0}) == {
        "train.custom_params.max_features": "`max_features` must be a decimal number in (0, 1] or null (got 0.0)."
    }
    assert parameters.problems("trees", declared, {"max_features": 1}) != {}  # an integer is not a fraction
    assert ExtraTreesWorkflow.describe()["parameters"] is None
    assert parameters.problems("trees", None, {"anything": [1, {"at": "all"}]}) == {}
    with pytest.raises(ValueError, match="type 'int' is not one of"):
        parameters.normalize({"n": {"type": "int"}})
