"""Compositions of trained runs through the API, the worker and real trainer processes: scored on the
request's holdout without training any member, refused when members disagree or leak into the holdout,
stacked with their weights shown, routed by a segmented request, and a model's champion."""

from __future__ import annotations

import copy
import io
import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from railyard_trainer import vocabulary as v
from railyard_trainer.storage import open_store
from railyard_trainer.vocabulary import RunKind, RunStatus
from tests.conftest import train_in_process, wait_for_terminal
from training import worker
from training.demo import segmented_request, write_segmented
from training.models import Model, Run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("workflows")]

#: Members learn from November to July and are checked on July; compositions are judged on October.
MEMBER_RANGE, MEMBER_HOLDOUT = ("2025-11-01", "2026-08-01"), ("2026-07-01", "2026-08-01")
COMPOSED_RANGE, COMPOSED_HOLDOUT = ("2026-08-01", "2026-11-01"), ("2026-10-01", "2026-11-01")


def dated(request: dict, span: tuple[str, str], held: tuple[str, str]) -> dict:
    request = copy.deepcopy(request)
    request["data"]["date_range"] = {"start": span[0], "end": span[1]}
    request["data"]["holdout_sampling"] = {
        "sampling_function": "DATE_RANGE",
        "date_range": dict(zip(("start", "end"), held, strict=True)),
    }
    return request


@pytest.fixture
def members(alice, fraud_request) -> tuple[Run, Run]:
    first = dated(fraud_request, MEMBER_RANGE, MEMBER_HOLDOUT)
    first["train"].update(workflow_name="logistic_regression", custom_params={"max_iter": 300})
    second = dated(fraud_request, MEMBER_RANGE, MEMBER_HOLDOUT)
    second["train"]["custom_params"] = {"max_iter": 30}
    return train_in_process(alice, first), train_in_process(alice, second)


def composing(fraud_request: dict, runs: list[int], method: str = "mean", **extra) -> dict:
    request = dated(fraud_request, COMPOSED_RANGE, COMPOSED_HOLDOUT)
    del request["train"]
    request["compose"] = {"members": runs, "method": method, **extra}
    return request


def holdout_rows(dataset: dict) -> pd.DataFrame:
    """The composition's holdout rows, read here as the trainer should: October, amount of at least 1."""
    charges = pd.read_parquet(dataset["charges"]).merge(
        pd.read_parquet(dataset["merchants"]), on="merchant_id", how="left"
    )
    october = (
        (charges["created_at"] >= "2026-10-01") & (charges["created_at"] < "2026-11-01") & (charges["amount"] >= 1)
    )
    return charges.loc[october & charges["is_fraud"].notna()]


def stored(run: Run, name: str) -> dict:
    return json.loads(open_store(run.artifact_uri).get(name))


def model_of(run: Run):
    return joblib.load(io.BytesIO(open_store(run.artifact_uri).get(v.MODEL)))


def test_a_mean_of_two_runs_is_the_mean_of_their_scores_on_the_holdout_evaluated_like_any_run(
    api, members, fraud_request, dataset, client, alice
):
    answer = api.post("/api/v1/runs", composing(fraud_request, [run.pk for run in members]), format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["kind"] == "composition"
    assert answer.json()["workflow_name"] is None
    run = wait_for_terminal(Run.objects.get(pk=answer.json()["id"]), worker.reconcile)
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    assert {"model.joblib", "metrics.json", "evaluation.json", "holdout_scores.parquet", "composition.json"} <= set(
        run.artifacts.values_list("name", flat=True)
    )
    # Independently: each member's own model on October's rows, averaged.
    rows = holdout_rows(dataset)
    own = [model_of(member).predict_proba(rows)[:, 1] for member in members]
    expected = (own[0] + own[1]) / 2
    assert run.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(rows["is_fraud"], expected), abs=1e-12)
    scores = pd.read_parquet(io.BytesIO(open_store(run.artifact_uri).get(v.HOLDOUT_SCORES)))
    assert np.allclose(np.sort(scores["score"].to_numpy()), np.sort(expected), atol=1e-12)
    # No member trained again: their models are the ones they wrote.
    for member in members:
        assert (
            member.artifacts.get(name=v.MODEL).sha256
            == Run.objects.get(pk=member.pk).artifacts.get(name=v.MODEL).sha256
        )
    summary = {m["run"]: m["score"] for m in stored(run, v.COMPOSITION)["members"]}
    for member, scored in zip(members, own, strict=True):
        assert summary[member.pk] == pytest.approx(skm.roc_auc_score(rows["is_fraud"], scored), abs=1e-12)
    # Its page lists the members beside it.
    client.force_login(alice)
    page = client.get(f"/runs/{run.pk}").content.decode()
    assert 'id="members"' in page
    assert f'href="/runs/{members[0].pk}"' in page
    assert "This composition" in page


def test_a_member_trained_on_the_holdouts_rows_or_of_another_label_is_refused_by_name(
    api, members, fraud_request, alice
):
    leaky = dated(fraud_request, ("2025-11-01", "2026-11-01"), ("2026-10-15", "2026-11-01"))
    leaky["train"]["custom_params"] = {"max_iter": 10}
    leaky_run = train_in_process(alice, leaky)
    answer = api.post("/api/v1/runs", composing(fraud_request, [members[0].pk, leaky_run.pk]), format="json")
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert list(errors) == ["compose.members[1]"]
    assert (
        f"Run {leaky_run.pk} trained on 2025-11-01 … 2026-10-15, which overlaps the holdout"
        in errors["compose.members[1]"][0]
    )

    other = dated(fraud_request, MEMBER_RANGE, MEMBER_HOLDOUT)
    other["train"].update(label="card_present", classifier_features=["amount", "customer_age_days"], custom_params={})
    other_run = train_in_process(alice, other)
    answer = api.post("/api/v1/runs", composing(fraud_request, [members[0].pk, other_run.pk]), format="json")
    assert answer.status_code == 400
    assert "predicts 'card_present'" in answer.json()["errors"]["compose.members[1]"][0]

    for body, field in (
        (composing(fraud_request, [members[0].pk, 999_999]), "compose.members[1]"),
        (composing(fraud_request, [members[0].pk]), "compose.members"),
        (composing(fraud_request, [members[0].pk, members[1].pk], "weighted", weights=[1]), "compose.weights"),
        (composing(fraud_request, [members[0].pk, members[1].pk], "vote"), "compose.method"),
        ({**composing(fraud_request, [members[0].pk, members[1].pk]), "train": fraud_request["train"]}, "compose"),
    ):
        answer = api.post("/api/v1/runs", body, format="json")
        assert answer.status_code == 400, body
        assert field in answer.json()["errors"], answer.json()
    assert not Run.objects.filter(kind=RunKind.COMPOSITION).exists()


def test_stacking_fits_its_layer_on_its_own_training_window_and_shows_the_weights(
    api, members, fraud_request, client, alice
):
    answer = api.post("/api/v1/runs", composing(fraud_request, [run.pk for run in members], "stacking"), format="json")
    run = wait_for_terminal(Run.objects.get(pk=answer.json()["id"]), worker.reconcile)
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason
    summary = stored(run, v.COMPOSITION)
    assert set(summary["stacking"]) == {str(members[0].pk), str(members[1].pk), "intercept"}
    layer = model_of(run)
    assert type(layer).__name__ == "StackingClassifier"
    assert layer.final_estimator_.coef_[0].tolist() == pytest.approx([summary["stacking"][str(m.pk)] for m in members])
    assert run.data_summary["train_dates"]["min"].startswith("2026-08")  # fitted on August and September
    client.force_login(alice)
    assert "Stacking weight" in client.get(f"/runs/{run.pk}").content.decode()


def test_a_routed_composition_serves_each_row_by_its_segments_model(api, tmp_path):
    data = write_segmented(tmp_path / "data" / "dated.parquet", merchants=8, own=3, rows=1600)
    request = segmented_request(data)
    request["data"]["features"][0]["names"].append("day")
    request["data"]["features"][0]["date_column"] = "day"
    request["data"]["date_range"] = {"start": "2026-01-01", "end": "2026-05-01"}
    parent = wait_for_terminal(
        Run.objects.get(pk=api.post("/api/v1/runs", request, format="json").json()["id"]), worker.reconcile, 600
    )
    assert parent.status == RunStatus.SUCCEEDED, parent.failure_reason
    winners = {s.name: s.run for s in parent.segments.filter(winner="segment")}
    assert set(winners) == {"m00", "m01", "m02"}

    composed = dated(request, ("2026-05-01", "2026-07-01"), ("2026-06-01", "2026-07-01"))
    del composed["train"]
    composed["compose"] = {"members": [parent.pk], "method": "routed"}
    answer = api.post("/api/v1/runs", composed, format="json")
    assert answer.status_code == 201, answer.content
    run = wait_for_terminal(Run.objects.get(pk=answer.json()["id"]), worker.reconcile)
    assert run.status == RunStatus.SUCCEEDED, run.failure_reason

    rows = pd.read_parquet(data)
    rows = rows[(rows["day"] >= "2026-06-01") & (rows["day"] < "2026-07-01")]
    generic = model_of(parent.children.get(kind=RunKind.GENERIC))
    expected = generic.predict_proba(rows)[:, 1]
    for name, child in winners.items():
        mine = (rows["merchant"] == name).to_numpy()
        expected[mine] = model_of(child).predict_proba(rows[mine])[:, 1]
    assert run.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(rows["fraud"], expected), abs=1e-12)
    summary = stored(run, v.COMPOSITION)
    assert summary["routed_segments"] == 3
    assert summary["generic_score"] == pytest.approx(
        skm.roc_auc_score(rows["fraud"], generic.predict_proba(rows)[:, 1]), abs=1e-12
    )
    assert run.metrics["roc_auc"] > summary["generic_score"] + 0.05


def test_a_composition_can_be_a_models_champion_and_its_retrain_is_compared_with_it(api, members, fraud_request):
    template = composing(fraud_request, [run.pk for run in members])
    answer = api.post("/api/v1/models", {"name": "blend", "project": "fraud", "request": template}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["metric"] == "roc_auc"
    first = Run.objects.get(pk=api.post("/api/v1/models/blend/runs", {}, format="json").json()["id"])
    first = wait_for_terminal(first, worker.reconcile)
    assert first.status == RunStatus.SUCCEEDED, first.failure_reason
    assert Model.objects.get(name="blend").champion_id == first.pk
    second = Run.objects.get(pk=api.post("/api/v1/models/blend/runs", {}, format="json").json()["id"])
    second = wait_for_terminal(second, worker.reconcile)
    assert second.status == RunStatus.SUCCEEDED, second.failure_reason
    # The same members on the same rows: the champion scores exactly what the challenger does.
    assert second.comparison["champion_run"] == first.pk
    assert second.comparison["champion_score"] == pytest.approx(second.comparison["challenger_score"], abs=1e-12)
    assert second.comparison["decision"] == "kept"
