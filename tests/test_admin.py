"""The admin as an operator's tool: fixes go through the transitions and leave events."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import launched, wait_for_terminal
from training import services, states, worker
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def operator(client, charlie):
    client.force_login(charlie)
    return client


def act(client, action: str, runs: list[Run], **extra):
    return client.post(
        "/admin/training/run/", {"action": action, "_selected_action": [r.pk for r in runs], **extra}, follow=True
    )


def test_cancelling_from_the_admin_leaves_an_event(operator, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]

    act(operator, "cancel_runs", [run])

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.events.last().actor == "charlie"


def test_marking_failed_asks_for_a_reason_and_records_it(operator, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    launched(run, running=True)

    page = act(operator, "mark_failed", [run])
    assert b"Mark runs failed" in page.content
    run.refresh_from_db()
    assert run.status == "running"  # nothing happens before the reason is given

    act(operator, "mark_failed", [run], apply="1", reason="node pool drained")

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.failure_reason == "node pool drained (marked failed by charlie)"
    event = run.events.last()
    assert (event.old_status, event.new_status, event.actor) == ("running", "failed", "charlie")


def test_an_operator_can_mark_a_succeeded_run_failed(operator, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    launched(run)
    states.mark_succeeded(run, {}, {})

    act(operator, "mark_failed", [run], apply="1", reason="trained on corrupt data")

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.events.last().old_status == "succeeded"


def test_requeueing_starts_a_new_attempt_with_an_event(operator, alice, fraud_request):
    failed = services.submit(alice, fraud_request)[0]
    states.mark_failed(failed, "out of memory")
    queued = services.submit(alice, fraud_request)[0]

    page = act(operator, "requeue_runs", [failed, queued])

    failed.refresh_from_db()
    assert (failed.status, failed.attempt) == ("queued", 2)
    assert failed.events.last().actor == "charlie"
    assert b"Requeued 1 of 2 selected run(s)" in page.content


def test_worker_owned_fields_are_read_only(operator, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    page = operator.get(f"/admin/training/run/{run.pk}/change/")
    assert page.status_code == 200
    assert b'name="status"' not in page.content
    assert b'name="metrics"' not in page.content
    assert b'name="model_description"' in page.content
    operator.post(f"/admin/training/run/{run.pk}/change/", {"model_description": "x", "status": "succeeded"})
    run.refresh_from_db()
    assert run.status == "queued"


def test_the_run_list_filters_by_status_and_searches(operator, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    services.submit(alice, {**fraud_request, "model_description": "churn thing"})
    page = operator.get("/admin/training/run/", {"q": "Card-fraud", "status__exact": "queued"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert list(page.context["cl"].result_list) == [run]


def test_a_requeued_run_trains_again_as_a_new_attempt_beside_the_first(operator, api, trained_run):
    first_metrics = trained_run.metrics
    first_model = trained_run.artifacts.get(name="model.joblib")
    states.mark_failed(trained_run, "wrong data", actor="charlie", operator=True)

    act(operator, "requeue_runs", [trained_run])

    trained_run.refresh_from_db()
    assert (trained_run.status, trained_run.attempt, trained_run.metrics) == ("queued", 2, {})
    assert trained_run.latest_artifacts == []
    worker.reconcile()
    trained_run.refresh_from_db()
    second = trained_run.current_job()
    assert second.attempt == 2
    assert trained_run.artifact_uri.endswith(f"/runs/{trained_run.pk}/attempt-2")
    trained_run = wait_for_terminal(trained_run, worker.reconcile)
    assert trained_run.status == "succeeded", trained_run.failure_reason
    assert trained_run.metrics == first_metrics  # same request, same seed, same data

    # The first attempt's model is still there, untouched; the API shows the latest and lists the others.
    new_model = trained_run.artifacts.get(name="model.joblib", attempt=2)
    assert new_model.uri != first_model.uri
    assert Path(first_model.uri.removeprefix("file://")).read_bytes()
    body = api.get(f"/api/v1/runs/{trained_run.pk}").json()
    assert [(j["attempt"], j["status"]) for j in body["jobs"]] == [(1, "succeeded"), (2, "succeeded")]
    assert {a["attempt"] for a in body["artifacts"]} == {2}
    assert {(a["name"], a["attempt"]) for a in body["earlier_artifacts"]} >= {("model.joblib", 1)}
    old = next(a for a in body["earlier_artifacts"] if a["name"] == "model.joblib")
    assert old["download_url"].endswith(f"/runs/{trained_run.pk}/artifacts/model.joblib?attempt=1")
    download = api.get(old["download_url"])
    assert b"".join(download.streaming_content) == Path(first_model.uri.removeprefix("file://")).read_bytes()
