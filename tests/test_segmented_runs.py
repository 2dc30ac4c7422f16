"""A segmented request end to end through the worker and the local executor: a generic model and a model
per merchant trained in a few real trainer processes, each segment judged against the generic model on
its own rows, the routed combination scored, and a job killed half way retried with `failed_only`."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from sklearn import metrics as skm

from railyard_trainer import vocabulary as v
from railyard_trainer.storage import open_store
from railyard_trainer.vocabulary import JobStatus, RunKind, RunStatus
from tests.conftest import wait_for_terminal, wait_until
from training import worker
from training.demo import SEGMENT_OWN as OWN
from training.demo import SMALL_MERCHANTS as SMALL
from training.demo import segmented_request
from training.demo import write_segmented as merchants
from training.models import Job, Run, Segment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("workflows")]


@pytest.fixture(scope="module")
def merchant_file(tmp_path_factory) -> Path:
    return merchants(tmp_path_factory.mktemp("merchants") / "charges.parquet")


def scores(run: Run) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(open_store(run.artifact_uri).get(v.HOLDOUT_SCORES)))


def test_one_request_trains_a_generic_model_and_a_model_per_merchant_in_a_few_jobs(api, merchant_file, client, alice):
    answer = api.post("/api/v1/runs", segmented_request(merchant_file, jobs=3), format="json")
    assert answer.status_code == 201, answer.content
    parent = Run.objects.get(pk=answer.json()["id"])
    assert answer.json()["kind"] == "segmented"
    parent = wait_for_terminal(parent, worker.reconcile, timeout=600)
    assert parent.status == RunStatus.SUCCEEDED, parent.failure_reason

    children = list(parent.children.order_by("pk"))
    generic = next(child for child in children if child.kind == RunKind.GENERIC)
    own = [child for child in children if child.kind == RunKind.SEGMENT]
    assert len(own) == 50
    assert all(child.status == RunStatus.SUCCEEDED for child in children)
    # One job planned and trained the generic model; the 50 segment models shared three more.
    jobs = Job.objects.filter(memberships__run__in=[parent, *children]).distinct()
    assert jobs.count() == 4
    assert sorted(job.memberships.count() for job in jobs) == [2, 16, 17, 17]

    segments = {segment.name: segment for segment in parent.segments.all()}
    assert set(segments) == {f"m{i:02d}" for i in range(50)} | set(SMALL)
    winners = {name for name, segment in segments.items() if segment.winner == "segment"}
    assert winners == {f"m{i:02d}" for i in range(OWN)}, winners
    for name in winners:
        assert segments[name].interval["low"] > 0
    for name in SMALL:  # too small to train: no run, served by the generic model
        assert segments[name].run_id is None
        assert segments[name].winner == "generic"
        assert segments[name].generic_score is not None

    # Every child's metric and the generic model's score on each segment's rows, recomputed here.
    generic_scores = scores(generic)
    assert generic.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(generic_scores["label"], generic_scores["score"]), abs=1e-12
    )
    data = pd.read_parquet(merchant_file).set_index("charge_id")
    for child in own:
        mine = scores(child)
        assert child.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(mine["label"], mine["score"]), abs=1e-12)
        segment = segments[child.segment]
        assert segment.run_id == child.pk
        assert segment.segment_score == pytest.approx(child.metrics["roc_auc"])
        theirs = generic_scores[generic_scores["row_id"].isin(mine["row_id"])]
        assert len(theirs) == len(mine) == segment.holdout_rows
        assert (data.loc[mine["row_id"], "merchant"] == child.segment).all()
        assert segment.generic_score == pytest.approx(skm.roc_auc_score(theirs["label"], theirs["score"]), abs=1e-12)
    # The random holdout is drawn within each merchant: a quarter of each one's rows.
    assert {segments[f"m{i:02d}"].holdout_rows for i in range(50)} == {300}

    # The routed combination: each winner's rows scored by its own model, every other row by the generic one.
    routed = generic_scores.set_index("row_id")["score"].copy()
    for child in own:
        if child.segment in winners:
            mine = scores(child).set_index("row_id")["score"]
            routed.loc[mine.index] = mine
    labels = generic_scores.set_index("row_id")["label"]
    expected = skm.roc_auc_score(labels, routed.loc[labels.index])
    assert parent.metrics["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert parent.metrics["roc_auc"] > generic.metrics["roc_auc"] + 0.05
    assert parent.data_summary["routed"] == {"segment": OWN, "generic": 50 - OWN + len(SMALL)}
    assert parent.data_summary["generic_roc_auc"] == generic.metrics["roc_auc"]
    assert "plan: 50 segment model(s) in 3 job(s)" in store_text(parent, v.LOG)  # the planning job's log

    store = open_store(parent.artifact_uri)
    routing = json.loads(store.get(v.ROUTING))
    assert routing["routes"]["m00"] == segments["m00"].run_id
    assert routing["routes"]["m40"] == routing["routes"]["s0"] == generic.pk
    table = json.loads(store.get(v.SEGMENTS))["segments"]
    assert len(table) == 53
    assert set(table[0]) == {
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
    # The API: children carry their parent; the table pages, sorts and searches.
    child = api.get(f"/api/v1/runs/{own[0].pk}").json()
    assert (child["kind"], child["parent"], child["segment"]) == ("segment", parent.pk, own[0].segment)
    listed = api.get("/api/v1/runs").json()["results"]
    assert [run["id"] for run in listed] == [parent.pk]  # children are listed under their request only
    assert len(api.get(f"/api/v1/runs?parent={parent.pk}&page_size=100").json()["results"]) == 51
    first = api.get(f"/api/v1/runs/{parent.pk}/segments?ordering=-difference&page_size=10").json()
    assert first["count"] == 53
    assert len(first["results"]) == 10
    assert first["next"] is not None
    assert {item["segment"] for item in first["results"]} == {f"m{i:02d}" for i in range(OWN)}
    assert first["results"][0] == segments[first["results"][0]["segment"]].item()
    assert first["results"][0]["run"] == segments[first["results"][0]["segment"]].run_id
    last = api.get(f"/api/v1/runs/{parent.pk}/segments?ordering=-difference&page_size=10&page=6").json()
    assert [item["difference"] for item in last["results"]] == [None, None, None]  # the small ones, last
    found = api.get(f"/api/v1/runs/{parent.pk}/segments?search=s&winner=generic").json()
    assert sorted(item["segment"] for item in found["results"]) == list(SMALL)
    bad = api.get(f"/api/v1/runs/{parent.pk}/segments?ordering=colour")
    assert bad.status_code == 400
    assert "ordering" in bad.json()["errors"]
    assert api.get(f"/api/v1/runs/{generic.pk}/segments").status_code == 404

    # The pages: the request's table, counts and chart; a child's place in it.
    client.force_login(alice)
    page = client.get(f"/runs/{parent.pk}?sort=-difference").content.decode()
    assert 'id="segment-table"' in page
    assert f"<strong>{OWN}</strong> served by their own model" in page
    assert "segment model minus generic model" in page  # the chart's spec
    assert page.index(">m0") < page.index(">m40<")  # the winners first
    page = client.get(f"/runs/{parent.pk}?q=s&winner=generic").content.decode()
    assert ">s0 <" in page
    assert ">m40<" not in page
    page = client.get(f"/runs/{own[0].pk}").content.decode()
    assert f'href="/runs/{parent.pk}"' in page
    assert 'id="versus-generic"' in page
    assert client.get("/runs").content.decode().count(f'href="/runs/{own[0].pk}"') == 0

    metadata = json.loads(open_store(own[0].artifact_uri).get(v.METADATA))
    assert metadata["run_id"] == str(own[0].pk)
    assert metadata["segment"] == {"column": "merchant", "value": own[0].segment}
    # Each child keeps its own log, not the whole job's.
    log = store_text(own[0], v.LOG)
    assert f"run {own[0].pk}: segment merchant='{own[0].segment}'" in log
    assert f"run {own[1].pk}:" not in log


def store_text(run: Run, name: str) -> str:
    return open_store(run.artifact_uri).get(name).decode()


def test_a_job_killed_half_way_fails_only_its_unfinished_children_and_failed_only_retrains_them(
    api, merchant_file, settings
):
    request = segmented_request(merchant_file, jobs=1, include_generic=True)
    # A slower model, so that the one segment job is still training when it is killed.
    request["train"]["workflow_name"] = "random_forest"
    request["train"]["custom_params"] = {"n_estimators": 100}
    parent = Run.objects.get(pk=api.post("/api/v1/runs", request, format="json").json()["id"])

    def planned() -> bool:
        worker.reconcile()
        return parent.segments.exists()

    wait_until(planned)
    own = parent.children.filter(kind=RunKind.SEGMENT)
    job = Job.objects.filter(memberships__run__in=own).distinct().get()

    def some_finished() -> bool:
        worker.reconcile()
        return any((Path(run.artifact_uri.removeprefix("file://")) / v.MANIFEST).exists() for run in own.all())

    wait_until(some_finished)
    job.refresh_from_db()
    os.killpg(job.handle["pid"], signal.SIGKILL)
    parent = wait_for_terminal(parent, worker.reconcile, timeout=600)
    assert parent.status == RunStatus.FAILED
    assert "retry with" in parent.failure_reason
    assert "failed_only" in parent.failure_reason
    finished = {run.pk for run in own.all() if run.status == RunStatus.SUCCEEDED}
    unfinished = {run.pk for run in own.all() if run.status == RunStatus.FAILED}
    assert finished
    assert unfinished
    assert len(finished | unfinished) == 50
    for run in own.filter(pk__in=unfinished):
        assert "killed" in run.failure_reason or "disappeared" in run.failure_reason, run.failure_reason
    kept = {run.pk: run.artifacts.get(name=v.MODEL).sha256 for run in own.filter(pk__in=finished)}

    answer = api.post(f"/api/v1/runs/{parent.pk}/retry", {"failed_only": True}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["id"] == parent.pk
    assert answer.json()["status"] == "running"
    parent = wait_for_terminal(parent, worker.reconcile, timeout=600)
    assert parent.status == RunStatus.SUCCEEDED, parent.failure_reason
    for run in own.all():
        assert run.status == RunStatus.SUCCEEDED
        assert run.attempt == (2 if run.pk in unfinished else 1)
    # Those that had finished were not retrained: same attempt, same model.
    assert {pk: Run.objects.get(pk=pk).artifacts.get(name=v.MODEL).sha256 for pk in finished} == kept
    assert Segment.objects.filter(parent=parent, run__isnull=False, segment_score__isnull=True).count() == 0
    again = api.post(f"/api/v1/runs/{parent.pk}/retry", {"failed_only": True}, format="json")
    assert again.status_code == 400
    assert "failed_only" in again.json()["detail"]


def test_the_trainer_refuses_more_segments_than_max_segments_naming_the_count(api, merchant_file):
    request = segmented_request(merchant_file, max_segments=20)
    # A filter: only the trainer can count the segments (a request of the file alone is refused at submit).
    request["data"]["filters"] = [{"feature_name": "x1", "predicate": "GtEq", "feature_value": -100}]
    parent = Run.objects.get(pk=api.post("/api/v1/runs", request, format="json").json()["id"])
    parent = wait_for_terminal(parent, worker.reconcile, timeout=300)
    assert parent.status == RunStatus.FAILED
    assert "50 segments have at least 500 training rows, more than max_segments (20)" in parent.failure_reason
    assert not parent.segments.exists()
    assert all(job.status == JobStatus.FAILED for job in Job.objects.filter(memberships__run=parent))


def test_on_kubernetes_the_packed_jobs_are_ordinary_jobs_writing_each_run_in_its_own_folder(cluster, api, tmp_path):
    data = merchants(tmp_path / "data" / "few.parquet", merchants=6, own=2, rows=800)
    answer = api.post("/api/v1/runs", segmented_request(data, jobs=2), format="json")
    parent = wait_for_terminal(Run.objects.get(pk=answer.json()["id"]), worker.reconcile, timeout=600)
    assert parent.status == RunStatus.SUCCEEDED, parent.failure_reason
    assert parent.executor == "kubernetes"
    children = list(parent.children.all())
    assert len(children) == 7
    assert all(child.status == RunStatus.SUCCEEDED for child in children)
    assert {s.name for s in parent.segments.filter(winner="segment")} == {"m00", "m01"}
    jobs = list(Job.objects.filter(memberships__run__in=children).distinct().order_by("pk"))
    assert len(jobs) == 3  # the plan (with the generic model), then the six segments in two
    for job in jobs:
        manifest = cluster.job(job.handle["job"])
        carried = sorted(job.memberships.values_list("run_id", flat=True))
        assert manifest["metadata"]["annotations"]["railyard.dev/run-ids"] == ",".join(map(str, carried))
        assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "railyard"
        assert manifest["spec"]["activeDeadlineSeconds"] > 0
        folders = [v["hostPath"]["path"] for v in manifest["spec"]["template"]["spec"]["volumes"] if "hostPath" in v]
        for run in Run.objects.filter(pk__in=carried):
            assert any(run.artifact_uri.removeprefix("file://").startswith(folder + "/") for folder in folders)
    assert parent.current_job() == jobs[0]
