"""Segmented requests at submit and in the trainer's parts: what `train.segment_by` accepts, what a
submit makes (the parent, its generic child, the job that plans), cancel and retry, the holdout drawn
within each segment, and the routed combination's score."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from railyard_trainer import segments
from railyard_trainer.comparison import Outputs
from railyard_trainer.holdout import split_within
from railyard_trainer.spec import TrainSpec
from railyard_trainer.vocabulary import DEFAULT_SEGMENT_JOBS, JobStatus, RunKind, RunStatus
from training.demo import segmented_request
from training.demo import write_segmented as merchants
from training.models import Job, Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def merchant_file(tmp_path):
    return merchants(tmp_path / "data" / "charges.parquet", merchants=6, own=2, rows=300)


@pytest.mark.parametrize(
    ("segment_by", "field", "words"),
    [
        ({"column": "colour"}, "train.segment_by.column", "not among the feature sources' names"),
        ({"column": "fraud"}, "train.segment_by.column", "cannot also be the segment column"),
        ({}, "train.segment_by.column", "required"),
        ({"column": "merchant", "min_rows": 0}, "train.segment_by.min_rows", "from 1"),
        ({"column": "merchant", "max_segments": 100_001}, "train.segment_by.max_segments", "from 1 to 100000"),
        ({"column": "merchant", "jobs": 0}, "train.segment_by.jobs", "from 1 to 100"),
        ({"column": "merchant", "include_generic": "yes"}, "train.segment_by.include_generic", "true or false"),
        ({"column": "merchant", "min_improvement": -1}, "train.segment_by.min_improvement", "from 0"),
        ({"column": "merchant", "per": "day"}, "train.segment_by.per", "Unknown field"),
    ],
)
def test_a_bad_segment_by_is_a_400_naming_the_field(api, merchant_file, segment_by, field, words):
    request = segmented_request(merchant_file)
    request["train"]["segment_by"] = segment_by
    answer = api.post("/api/v1/runs", request, format="json")
    assert answer.status_code == 400
    assert any(words in message for message in answer.json()["errors"][field]), answer.json()
    assert not Run.objects.exists()


def test_a_submit_makes_the_parent_its_generic_child_and_one_job_that_plans(api, merchant_file, settings):
    answer = api.post("/api/v1/runs", segmented_request(merchant_file), format="json")
    assert answer.status_code == 201, answer.content
    parent = Run.objects.get(pk=answer.json()["id"])
    assert parent.kind == RunKind.SEGMENTED
    assert parent.spec["train"]["segment_by"] == {
        "column": "merchant",
        "min_rows": 500,
        "include_generic": True,
        "max_segments": 5000,
        "jobs": DEFAULT_SEGMENT_JOBS,
        "min_improvement": 0.01,
    }
    generic = parent.children.get()
    assert generic.kind == RunKind.GENERIC
    assert generic.spec == {**parent.spec, "run_id": str(generic.pk)}
    assert generic.artifact_uri.endswith(f"/runs/{generic.pk}/attempt-1")
    job = Job.objects.get()
    assert job.status == JobStatus.PENDING
    assert sorted(job.memberships.values_list("run_id", flat=True)) == [parent.pk, generic.pk]

    # The compute profile may say how many jobs its segmented requests use.
    resources = settings.RAILYARD["COMPUTE_RESOURCES"]
    settings.RAILYARD = {
        **settings.RAILYARD,
        "COMPUTE_RESOURCES": {**resources, "cpu": {**resources["cpu"], "segment_jobs": 7}},
    }
    request = segmented_request(merchant_file, include_generic=False)
    parent = Run.objects.get(pk=api.post("/api/v1/runs", request, format="json").json()["id"])
    assert parent.spec["train"]["segment_by"]["jobs"] == 7
    assert not parent.children.exists()
    assert list(Job.objects.get(memberships__run=parent).memberships.values_list("run_id", flat=True)) == [parent.pk]


def test_cancelling_a_request_cancels_its_children_and_their_waiting_jobs(api, merchant_file):
    parent = Run.objects.get(pk=api.post("/api/v1/runs", segmented_request(merchant_file), format="json").json()["id"])
    assert api.post(f"/api/v1/runs/{parent.pk}/cancel").status_code == 200
    assert parent.children.get().status == RunStatus.CANCELLED
    assert Job.objects.get().status == JobStatus.CANCELLED


def test_failed_only_is_refused_where_it_does_not_apply(api, merchant_file, trained_run):
    answer = api.post(f"/api/v1/runs/{trained_run.pk}/retry", {"failed_only": True}, format="json")
    assert answer.status_code == 400
    assert "segmented request" in answer.json()["detail"]
    parent = Run.objects.get(pk=api.post("/api/v1/runs", segmented_request(merchant_file), format="json").json()["id"])
    answer = api.post(f"/api/v1/runs/{parent.pk}/retry", {"failed_only": True}, format="json")
    assert answer.status_code == 400
    assert "is queued" in answer.json()["detail"]
    child = parent.children.get()
    answer = api.post(f"/api/v1/runs/{child.pk}/retry", format="json")
    assert answer.status_code == 400
    assert f"part of run {parent.pk}" in answer.json()["detail"]
    answer = api.post(f"/api/v1/runs/{parent.pk}/retry", {"failed_only": "yes"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"failed_only": ["Must be true or false."]}


def test_the_random_holdout_is_drawn_within_each_segment_and_label(tmp_path):
    frame = pd.DataFrame(
        {"merchant": ["a"] * 1000 + ["b"] * 10 + ["c"], "y": ([0, 1] * 505) + [1], "x": np.arange(1011)}
    )
    spec = TrainSpec.from_dict(
        {
            "data": {
                "features": [{"names": ["merchant", "x", "y"], "source": "file", "format": "csv", "path": "x.csv"}],
                "holdout_sampling": {"sampling_function": "RANDOM", "fraction": 0.3, "seed": 5, "stratify": True},
            },
            "train": {
                "workflow_name": "logistic_regression",
                "classifier_features": ["x"],
                "label": "y",
                "segment_by": {"column": "merchant", "min_rows": 1, "include_generic": True, "max_segments": 9},
            },
        }
    )
    training, held = split_within(frame, spec, "merchant")
    assert held.groupby(["merchant", "y"]).size().to_dict() == {("a", 0): 150, ("a", 1): 150, ("b", 0): 2, ("b", 1): 2}
    assert len(training) + len(held) == len(frame)
    again = split_within(frame.sample(frac=1, random_state=1).sort_index(), spec, "merchant")[1]
    assert again["x"].tolist() == held["x"].tolist()  # seeded: the same rows every time


def test_the_routed_combination_scores_each_row_by_the_model_serving_its_segment():
    rng = np.random.default_rng(4)
    n = 600
    labels = rng.integers(0, 2, n)
    generic = pd.DataFrame({"row_id": np.arange(n), "label": labels, "score": rng.random(n)})
    rows = np.arange(100, 220)
    winner = pd.DataFrame({"row_id": rows, "label": labels[rows], "score": labels[rows] * 0.8 + 0.1})
    routed = segments.routed_from_scores("roc_auc", "binary", generic, [winner], 1, 0.5)
    expected = generic["score"].to_numpy().copy()
    expected[rows] = winner["score"]
    assert routed == pytest.approx(skm.roc_auc_score(labels, expected), abs=1e-12)
    # With no generic model, the combination covers the rows of the segments that have their own.
    alone = segments.routed_from_scores("roc_auc", "binary", None, [winner], 1, 0.5)
    assert alone == pytest.approx(skm.roc_auc_score(labels[rows], winner["score"]), abs=1e-12)


def test_without_a_generic_model_a_trained_segment_serves_itself():
    truth = np.array([0, 1, 0, 1, 1, 0])
    own = Outputs(truth, score=truth * 0.9)
    item = segments.versus_generic("ie", 3, 900, "roc_auc", "binary", truth, own, None, 1)
    assert (item["winner"], item["generic_score"], item["segment_score"]) == ("segment", None, 1.0)


def test_scores_read_back_from_parquet_keep_their_outputs():
    frame = pd.DataFrame({"row_id": [1, 2], "label": ["a", "b"], "prediction": ["a", "a"], "score_a": [0.7, 0.6]})
    frame = pd.read_parquet(io.BytesIO(frame.to_parquet()))
    out = segments.outputs_from_scores("multiclass", frame, 0.5)
    assert out.classes == ["a"]
    assert out.predicted.tolist() == ["a", "a"]


def test_too_many_segments_is_a_400_at_submit_when_the_file_alone_tells(api, merchant_file):
    # Six merchants of 300 rows: 225 training rows each (a quarter held out within each merchant).
    request = segmented_request(merchant_file, min_rows=225, max_segments=5)
    answer = api.post("/api/v1/runs", request, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"]["train.segment_by.max_segments"] == [
        "6 values of 'merchant' have at least 225 training rows, more than max_segments (5); raise max_segments or "
        "min_rows."
    ]
    assert (
        api.post(
            "/api/v1/runs", segmented_request(merchant_file, min_rows=226, max_segments=5), format="json"
        ).status_code
        == 201
    )
    # With a filter only the trainer can count them.
    request["data"]["filters"] = [{"feature_name": "x1", "predicate": "GtEq", "feature_value": -100}]
    assert api.post("/api/v1/runs", request, format="json").status_code == 201
