"""The dashboard's pages: runs list, launch form, run detail with charts."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from training import services
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


@pytest.fixture
def browser(client, alice):
    client.force_login(alice)
    return client


def form_data(dataset) -> dict:
    return {
        "project": "fraud",
        "model_description": "from the form",
        "compute_resource": "cpu",
        "source_path": str(dataset["charges"]),
        "source_format": "parquet",
        "names": "created_at, amount, country, card_type, is_fraud",
        "date_column": "created_at",
        "extra_sources": "",
        "date_start": "2025-11-01",
        "date_end": "2026-11-01",
        "filters": '[{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}]',
        "sampling_function": "DATE_RANGE",
        "holdout_start": "2026-10-01",
        "holdout_end": "2026-11-01",
        "fraction": "",
        "seed": "",
        "workflow_name": "logistic_regression",
        "label": "is_fraud",
        "classifier_features": "amount, country, card_type",
        "custom_params": '{"C": 0.5}',
    }


def field_errors(html: str, field: str) -> list[str]:
    return re.findall(rf'<p class="field-error" id="id_{field}-error">([^<]*)</p>', html)


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login")


def test_it_logs_in_with_a_password(client, alice):
    response = client.post("/login", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_the_run_list_shows_runs_with_status_badges(browser, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    html = browser.get("/").content.decode()
    assert f'href="/runs/{run.pk}"' in html
    assert '<span class="badge status-queued">queued</span>' in html


def test_the_run_list_filters_and_says_when_nothing_matches(browser, alice, fraud_request):
    services.submit(alice, fraud_request)
    html = browser.get("/", {"status": "succeeded"}).content.decode()
    assert "No runs match these filters" in html
    assert "status-queued" not in html


def test_the_run_list_keeps_a_fixed_number_of_queries(browser, alice, fraud_request):
    services.submit(alice, fraud_request)
    with CaptureQueriesContext(connection) as few:
        browser.get("/")
    for _ in range(5):
        services.submit(alice, fraud_request)
    with CaptureQueriesContext(connection) as many:
        browser.get("/")
    assert len(few) == len(many)


def test_the_launch_form_offers_the_catalogue(browser):
    html = browser.get("/runs/new").content.decode()
    assert '<option value="gradient_boosting">gradient_boosting (classification)</option>' in html
    assert '<option value="gpu">gpu</option>' in html


def test_the_launch_form_queues_a_run(browser, alice, dataset):
    response = browser.post("/runs/new", form_data(dataset))

    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}"
    assert run.owner == alice
    assert run.request["train"] == {
        "workflow_name": "logistic_regression",
        "label": "is_fraud",
        "classifier_features": ["amount", "country", "card_type"],
        "custom_params": {"C": 0.5},
    }
    assert run.request["data"]["holdout_sampling"]["date_range"] == {"start": "2026-10-01", "end": "2026-11-01"}


def test_the_launch_form_shows_errors_beside_their_fields(browser, dataset):
    data = {**form_data(dataset), "label": "is_fraudd", "holdout_end": "2027-01-01", "custom_params": "{oops"}

    response = browser.post("/runs/new", data)

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "custom_params") == [
        "Not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)."
    ]
    assert Run.objects.count() == 0


def test_the_launch_form_reports_contract_errors_like_the_api(browser, dataset):
    data = {**form_data(dataset), "label": "is_fraudd", "holdout_end": "2027-01-01", "source_path": "/nope.parquet"}

    html = browser.post("/runs/new", data).content.decode()

    assert field_errors(html, "label") == ["&#x27;is_fraudd&#x27; is not among the feature sources&#x27; names."]
    assert "must lie inside the date range" in field_errors(html, "holdout_start")[0]
    assert field_errors(html, "source_path") == ["No file at /nope.parquet."]


def test_the_run_page_draws_every_evaluation_chart(browser, trained_run):
    html = browser.get(f"/runs/{trained_run.pk}").content.decode()

    assert '<script src="/vendor/plotly.min.js"></script>' in html
    chart_ids = re.findall(r'<div id="(chart-\d+)" class="plotly-graph-div"', html)
    assert len(chart_ids) == 6
    for title in (
        "ROC curve",
        "recall curve",
        "Scores by class",
        "Calibration",
        "Confusion matrix",
        "Feature importance",
    ):
        assert title in html
    assert "<th>roc_auc</th>" in html
    assert f'href="/api/v1/runs/{trained_run.pk}/artifacts/model.joblib"' in html
    assert "train_rows" in html
    assert 'http-equiv="refresh"' not in html


def test_the_run_page_of_an_active_run_refreshes_and_offers_cancel(browser, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    html = browser.get(f"/runs/{run.pk}").content.decode()
    assert 'http-equiv="refresh"' in html
    assert f'action="/runs/{run.pk}/cancel"' in html

    browser.post(f"/runs/{run.pk}/cancel")

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "Cancel</button>" not in browser.get(f"/runs/{run.pk}").content.decode()


def test_the_run_page_shows_why_a_run_failed(browser, alice, fraud_request):
    from training import states

    run = services.submit(alice, fraud_request)[0]
    states.mark_failed(run, "bad data: no rows left")
    html = browser.get(f"/runs/{run.pk}").content.decode()
    assert "<strong>Failed:</strong> bad data: no rows left" in html


def test_retry_from_the_run_page_queues_a_linked_run(browser, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    response = browser.post(f"/runs/{run.pk}/retry")
    retry = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/runs/{retry.pk}"
    assert retry.retried_from == run


def test_plotly_is_served_without_a_cdn(client):
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/javascript"
    assert b"plotly" in response.content[:2000].lower()


def test_the_health_check_answers(client):
    assert client.get("/healthz").content == b"ok"


def test_the_stylesheet_is_served_by_the_app(client):
    response = client.get("/static/railyard.css")
    assert response.status_code == 200
    assert b".badge" in b"".join(response.streaming_content)


def test_the_run_page_says_what_the_run_is_waiting_for(browser, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    Run.objects.filter(pk=run.pk).update(status_message="no node can run the trainer yet (Unschedulable)")
    html = browser.get(f"/runs/{run.pk}").content.decode()
    assert '<p class="notice" role="status">no node can run the trainer yet (Unschedulable)</p>' in html
