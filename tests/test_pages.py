"""The dashboard's pages: the runs list, a run with its charts and progress, compare, workflows and projects."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import path

from tests.conftest import launched
from training import services
from training.models import Run

pytestmark = pytest.mark.usefixtures("workflows")


def test_pages_need_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login")


def test_it_logs_in_with_a_password(client, alice):
    response = client.post("/login", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_the_run_list_shows_runs_with_status_badges(signed_in, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    html = signed_in.get("/").content.decode()
    assert f'href="/runs/{run.pk}"' in html
    assert '<span class="badge status-queued">queued</span>' in html


def test_the_run_list_shows_each_runs_primary_metric_from_the_registry(signed_in, alice, fraud_request):
    binary, regression = (services.submit(alice, fraud_request)[0] for _ in range(2))
    succeed(binary, roc_auc=0.8123, log_loss=0.3)
    succeed(regression, r2=0.4567, rmse=1.2)

    html = signed_in.get("/").content.decode()

    assert '<span class="muted">ROC AUC</span> 0.8123' in html
    assert '<span class="muted">R²</span> 0.4567' in html


def test_the_run_list_filters_and_says_when_nothing_matches(signed_in, alice, fraud_request):
    services.submit(alice, fraud_request)
    html = signed_in.get("/", {"status": "succeeded"}).content.decode()
    assert "No runs match these filters" in html
    assert "data-run-id" not in html


def test_the_run_list_keeps_a_fixed_number_of_queries(signed_in, alice, fraud_request):
    services.submit(alice, fraud_request)
    signed_in.get("/")  # the status counts are cached from here on, as on a busy dashboard
    with CaptureQueriesContext(connection) as few:
        signed_in.get("/")
    for _ in range(5):
        services.submit(alice, fraud_request)
    with CaptureQueriesContext(connection) as many:
        signed_in.get("/")
    assert len(few) == len(many)


def chart_specs(html: str) -> list[dict]:
    found = re.search(r'<script id="chart-specs" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_the_run_page_carries_every_evaluation_chart(signed_in, trained_run):
    html = signed_in.get(f"/runs/{trained_run.pk}").content.decode()

    assert '<script src="/vendor/plotly.min.js" defer></script>' in html
    titles = [spec["layout"]["title"]["text"] for spec in chart_specs(html)]
    assert titles == [
        "ROC curve",
        "Precision–recall curve",
        "Scores by class",
        "Calibration",
        "Confusion matrix",
        "Feature importance — permutation (roc_auc)",
    ]
    assert '<div id="charts" class="charts"' in html
    assert "<th>roc_auc</th>" in html
    assert f'href="/api/v1/runs/{trained_run.pk}/artifacts/model.joblib"' in html
    assert "train_rows" in html
    assert 'data-active="false"' in html
    assert "curl -X POST http://testserver/api/v1/runs" in html


def test_the_run_page_of_an_active_run_follows_it_and_offers_cancel(signed_in, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    html = signed_in.get(f"/runs/{run.pk}").content.decode()
    assert f'data-live-url="/runs/{run.pk}/live" data-active="true"' in html
    assert f'action="/runs/{run.pk}/cancel"' in html

    signed_in.post(f"/runs/{run.pk}/cancel")

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "Cancel</button>" not in signed_in.get(f"/runs/{run.pk}").content.decode()


def test_the_live_view_reports_progress_then_results(signed_in, alice, fraud_request, trained_run):
    run = services.submit(alice, fraud_request)[0]
    queued = signed_in.get(f"/runs/{run.pk}/live").json()
    assert (queued["status"], queued["is_active"], queued["stage"], queued["progress"]) == ("queued", True, None, 0)
    assert "results_html" not in queued

    done = signed_in.get(f"/runs/{trained_run.pk}/live").json()
    assert (done["status"], done["is_active"]) == ("succeeded", False)
    assert len(done["charts"]) == 6
    assert "<th>roc_auc</th>" in done["results_html"]


def test_the_run_page_shows_why_a_run_failed(signed_in, alice, fraud_request):
    from training import states

    run = services.submit(alice, fraud_request)[0]
    states.mark_failed(run, "bad data: no rows left")
    html = signed_in.get(f"/runs/{run.pk}").content.decode()
    assert "<strong>Failed:</strong> <span>bad data: no rows left</span>" in html


def test_retry_from_the_run_page_queues_a_linked_run(signed_in, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    response = signed_in.post(f"/runs/{run.pk}/retry")
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


def test_the_run_page_says_what_the_run_is_waiting_for(signed_in, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    Run.objects.filter(pk=run.pk).update(status_message="no node can run the trainer yet (Unschedulable)")
    html = signed_in.get(f"/runs/{run.pk}").content.decode()
    assert re.search(
        r'<p id="status-message" class="notice" role="status"\s*>no node can run the trainer yet '
        r"\(Unschedulable\)</p>",
        html,
    )


def test_the_trainers_stage_is_read_from_its_log():
    from training.logs import progress

    assert progress("") == (None, 0)
    assert progress("t stage=load started\nt stage=load done duration=1s\nt stage=filter started\n") == ("filter", 17)
    assert progress("stage=serialize done duration=0.1s") == ("serialize", 100)
    assert progress("stage=evaluate done duration=1s\nstage=compare started\n") == ("compare", 83)
    assert progress("stage=compare done duration=1s\nstage=serialize started\n") == ("serialize", 83)


def test_the_progress_bar_moves_with_the_iterations_an_estimator_reports():
    from training.logs import progress

    training = "t stage=split done duration=0.1s\nt stage=train started\n"
    assert progress(training) == ("train", 50)
    assert progress(training + "[25/100] 1 tree, 31 leaves, max depth = 7, in 0.01s\n") == ("train", 54)
    assert progress(training + "t train: up to 200 iterations\nIteration 150, loss = 0.31\n") == ("train", 62)
    # A long run's tail may hold iteration lines only.
    assert progress("[90/100] 1 tree, 31 leaves, max depth = 7, in 0.01s\n") == ("train", 65)
    assert progress(training + "[100/100] 1 tree\nt stage=train done duration=9s\n") == ("train", 67)
    assert progress(training + "[100/100] 1 tree\nt stage=evaluate started\n") == ("evaluate", 67)


def test_active_rows_can_ask_for_their_statuses(signed_in, alice, fraud_request):
    first, second = (services.submit(alice, fraud_request)[0] for _ in range(2))
    services.cancel(second, actor="alice")
    body = signed_in.get("/runs/statuses", {"ids": f"{first.pk},{second.pk},x"}).json()
    assert body == {str(first.pk): "queued", str(second.pk): "cancelled"}


def test_the_run_list_pages_by_cursor_and_searches(signed_in, alice, fraud_request):
    runs = [services.submit(alice, {**fraud_request, "model_description": f"model {i}"})[0] for i in range(27)]
    first = signed_in.get("/").content.decode()
    assert f'href="/runs/{runs[-1].pk}"' in first
    cursor = re.search(r"before_id=(\d+)", first).group(1)
    second = signed_in.get("/", {"before_id": cursor}).content.decode()
    assert f'href="/runs/{runs[0].pk}"' in second
    assert f'href="/runs/{runs[-1].pk}"' not in second
    assert "before_id=" not in second  # nothing older
    found = signed_in.get("/", {"q": "model 13"}).content.decode()
    assert re.findall(r'data-run-id="(\d+)"', found) == [str(runs[13].pk)]


def test_comparing_runs_highlights_the_best_and_shows_what_differs(signed_in, alice, fraud_request):
    from training import states

    runs = []
    for auc, loss, rate in ((0.81, 0.30, 0.1), (0.86, 0.25, 0.05)):
        request = {**fraud_request, "train": {**fraud_request["train"], "custom_params": {"learning_rate": rate}}}
        run = services.submit(alice, request)[0]
        launched(run)
        states.mark_succeeded(run, {"roc_auc": auc, "log_loss": loss}, {})
        runs.append(run)

    html = signed_in.get("/compare", {"runs": [r.pk for r in runs]}).content.decode()

    assert re.search(r'<th scope="row">roc_auc</th><td>0.8100</td><td class="best" title="best">0.8600</td>', html)
    assert re.search(r'<th scope="row">log_loss</th><td>0.3000</td><td class="best" title="best">0.2500</td>', html)
    assert "<code>train.custom_params.learning_rate</code></th><td><code>0.1</code></td><td><code>0.05</code>" in html
    assert signed_in.get("/compare", {"runs": [runs[0].pk]}).status_code == 302


def test_unknown_pages_answer_404_in_the_sites_style(signed_in):
    response = signed_in.get("/no/such/page")
    assert response.status_code == 404
    assert b"There is nothing at this address" in response.content


def succeed(run: Run, **metrics: float) -> Run:
    from training import states

    launched(run)
    states.mark_succeeded(run, metrics, {})
    return run


def test_the_workflows_page_describes_each_with_its_defaults_and_run_count(signed_in, alice, fraud_request):
    services.submit(alice, fraud_request)
    html = signed_in.get("/workflows").content.decode()
    assert '<a href="/workflows/gradient_boosting">gradient_boosting</a>' in html
    assert "Histogram gradient boosting with native categorical and missing-value support." in html
    assert "<code>max_iter=100</code>" in html
    assert re.search(r'href="/workflows/gradient_boosting">.*?1 run<', html, re.S)


def test_a_workflows_page_lists_its_parameters_with_what_each_accepts_and_its_default(signed_in):
    html = signed_in.get("/workflows/logistic_regression").content.decode()

    rows = dict(re.findall(r"<tr><td><code>(\w+)</code></td><td>(.*?)</td>", html))
    assert rows["C"] == "a number &gt; 0"
    assert rows["max_iter"] == "an integer ≥ 0"
    assert (
        rows["solver"] == "one of &quot;lbfgs&quot;, &quot;liblinear&quot;, &quot;newton-cg&quot;, "
        "&quot;newton-cholesky&quot;, &quot;sag&quot;, &quot;saga&quot;"
    )
    assert "<td><code>C</code></td><td>a number &gt; 0</td><td><code>1.0</code></td>" in html
    assert "<td><code>max_iter</code></td><td>an integer ≥ 0</td><td><code>1000</code></td>" in html  # its default


def test_a_workflows_page_shows_its_recent_runs_and_their_metric_trend(signed_in, alice, fraud_request):
    runs = [succeed(services.submit(alice, fraud_request)[0], roc_auc=auc) for auc in (0.71, 0.74, 0.79)]
    forest = {**fraud_request["train"], "workflow_name": "random_forest", "custom_params": {}}
    services.submit(alice, {**fraud_request, "train": forest})

    html = signed_in.get("/workflows/gradient_boosting").content.decode()

    assert re.findall(r'<td><a href="/runs/(\d+)">', html) == [str(r.pk) for r in reversed(runs)]
    trend = chart_specs(html)
    assert [spec["layout"]["title"]["text"] for spec in trend] == ["roc_auc of recent runs"]
    assert trend[0]["data"][0]["y"] == [0.71, 0.74, 0.79]
    assert signed_in.get("/workflows/no_such_workflow").status_code == 404


def test_projects_list_their_runs(signed_in, alice, fraud_request):
    services.submit(alice, fraud_request)
    services.submit(alice, {**fraud_request, "project": "churn"})
    listing = signed_in.get("/projects").content.decode()
    assert '<a href="/projects/churn">churn</a></td><td>1</td>' in listing
    page = signed_in.get("/projects/fraud").content.decode()
    assert len(re.findall(r'<td><a href="/runs/\d+">', page)) == 1
    assert "A trend of roc_auc appears once two runs have succeeded." in page


@pytest.mark.parametrize("path", ["/", "/workflows", "/projects", "/workflows/gradient_boosting", "/projects/fraud"])
def test_pages_keep_a_fixed_number_of_queries(signed_in, alice, fraud_request, path):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert signed_in.get(path).status_code == 200
        return len(captured)

    succeed(services.submit(alice, fraud_request)[0], roc_auc=0.7)
    queries()  # the run list's status counts are cached from here on
    few = queries()
    for auc in (0.71, 0.72, 0.73):
        succeed(services.submit(alice, {**fraud_request, "project": f"p{int(auc * 100)}"})[0], roc_auc=auc)
    assert queries() == few


def test_the_run_and_compare_pages_keep_a_fixed_number_of_queries(signed_in, alice, fraud_request):
    from training import states

    run = succeed(services.submit(alice, fraud_request)[0], roc_auc=0.7)
    other = succeed(services.submit(alice, fraud_request)[0], roc_auc=0.8)
    with CaptureQueriesContext(connection) as before:
        signed_in.get(f"/runs/{run.pk}")
        signed_in.get("/compare", {"runs": [run.pk, other.pk]})
    for i in range(3):
        states.transition(run, states.RunStatus.FAILED, operator=True, reason=f"again {i}")
        states.transition(run, states.RunStatus.SUCCEEDED, operator=True, reason=f"again {i}")
    with CaptureQueriesContext(connection) as after:
        signed_in.get(f"/runs/{run.pk}")
        signed_in.get("/compare", {"runs": [run.pk, other.pk]})
    assert len(before) == len(after)  # more events, same queries


def _crash(request):
    raise RuntimeError("a bug")


urlpatterns = [path("crash", _crash)]


def test_a_server_error_answers_500_in_the_sites_style(client, settings):
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False
    response = client.get("/crash")
    assert response.status_code == 500
    assert b"Something broke" in response.content
    assert b"/static/railyard.css" in response.content


def test_training_time_is_the_trainers_own_clock_not_the_time_until_the_run_was_seen_to_end(
    signed_in, alice, fraud_request
):
    from datetime import timedelta

    from training import states

    run = services.submit(alice, fraud_request)[0]
    launched(run)
    seconds = {"load": 0.2, "filter": 0.1, "split": 0.05, "train": 3.4, "evaluate": 0.6}
    states.mark_succeeded(run, {"roc_auc": 0.8}, {"stage_seconds": seconds})
    # The worker saw it end an hour later (it was down, or an operator finished it by hand).
    Run.objects.filter(pk=run.pk).update(started_at=run.finished_at, finished_at=run.finished_at + timedelta(hours=1))

    html = signed_in.get(f"/runs/{run.pk}").content.decode()

    assert "<dt>Training time</dt><dd>3.4 s" in html
    assert "load 0.2 s, filter 0.1 s, split 0.1 s, evaluate 0.6 s" in html
    assert "3600" not in html


def test_the_run_list_sorts_best_first_by_each_runs_primary_metric(signed_in, alice, fraud_request):
    from training import states

    made = {}
    for name, metrics in (("low", {"roc_auc": 0.7}), ("high", {"roc_auc": 0.9}), ("r2", {"r2": 0.8}), ("none", None)):
        run = services.submit(alice, fraud_request)[0]
        if metrics:
            launched(run)
            states.mark_succeeded(run, metrics, {})
        made[name] = run.pk

    html = signed_in.get("/?project=fraud&sort=metric").content.decode()

    order = [int(pk) for pk in re.findall(r'<tr data-run-id="(\d+)"', html)]
    assert order == [made["high"], made["r2"], made["low"], made["none"]]
    assert 'aria-sort="descending"' in html
    assert '<a href="?project=fraud" title="Newest first">Primary metric ↓</a>' in html
    newest = signed_in.get("/?project=fraud").content.decode()
    assert [int(pk) for pk in re.findall(r'<tr data-run-id="(\d+)"', newest)] == sorted(made.values(), reverse=True)


def evaluation_of(task: str, seed: int) -> dict:
    """A real evaluation of a small model of `task`, as evaluation.json holds it."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from railyard_trainer.evaluation import evaluate

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    if task == "regression":
        y = pd.Series(X["a"] * 2 + rng.normal(size=300), name="y")
        model = LinearRegression().fit(X, y)
    else:
        y = pd.Series(np.select([X["a"] < -0.5, X["a"] < 0.5], ["low", "mid"], "high"), name="y")
        model = LogisticRegression().fit(X, y)
    return json.loads(json.dumps({"charts": evaluate(task, model, X, y, seed).charts}))


@pytest.mark.parametrize(
    ("task", "titles"),
    [
        ("regression", ["Predicted vs actual", "Residuals"]),
        ("multiclass", ["F1 by class", "Confusion matrix of #1 w", "Confusion matrix of #2 w"]),
    ],
)
def test_compare_draws_each_tasks_charts_with_a_trace_per_run(task, titles):
    from types import SimpleNamespace

    from training import compare

    runs = [SimpleNamespace(pk=pk, workflow=SimpleNamespace(name="w")) for pk in (1, 2)]

    specs = compare.overlaid(runs, [evaluation_of(task, 1), evaluation_of(task, 2)])

    assert [spec["layout"]["title"]["text"] for spec in specs] == titles
    traces = [trace.get("name") for trace in specs[0]["data"]]
    assert traces[:2] == ["#1 w", "#2 w"]
    if task == "multiclass":
        assert specs[1]["data"][0]["type"] == "heatmap"
        assert specs[1]["data"][0]["x"] == ["high", "low", "mid"]


def test_the_time_left_is_estimated_from_earlier_runs_of_the_workflow_on_similar_rows(
    signed_in, alice, fraud_request, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from training import states, views

    def finished(rows: int, seconds: float, workflow: str = "gradient_boosting") -> None:
        train = {**fraud_request["train"], "workflow_name": workflow, "custom_params": {}}
        run = services.submit(alice, {**fraud_request, "train": train})[0]
        launched(run)
        split = {"load": 1.0, "filter": 1.0, "split": 1.0, "evaluate": 2.0}
        states.mark_succeeded(
            run, {"roc_auc": 0.8}, {"train_rows": rows, "stage_seconds": {**split, "train": seconds - 5}}
        )

    for rows, seconds in ((1000, 30), (1500, 40), (800, 50), (100_000, 999)):
        finished(rows, seconds)
    finished(1000, 500, workflow="random_forest")
    run = services.submit(alice, fraud_request)[0]
    launched(run, running=True)
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=10))
    log = "t stage=split done duration=0.1s train_rows=1200 holdout_rows=300\nt stage=train started\n"
    monkeypatch.setattr(views, "run_log", lambda run, tail: log)

    live = signed_in.get(f"/runs/{run.pk}/live").json()
    page = signed_in.get(f"/runs/{run.pk}").content.decode()

    assert live["time_left"] == {"seconds": 30, "runs": 3}  # the median of 30, 40 and 50, less the 10 run
    assert "About 30 s left (from 3 earlier runs of this workflow on a similar number of rows)." in page
    monkeypatch.setattr(views, "run_log", lambda run, tail: "t stage=load started\n")  # rows not known yet
    assert signed_in.get(f"/runs/{run.pk}/live").json()["time_left"] is None


def test_every_page_carries_the_content_security_policy_and_no_inline_script(signed_in, trained_run):
    pages = ["/", "/runs/new", f"/runs/{trained_run.pk}", "/projects", "/projects/fraud", "/tokens", "/api/docs/"]
    for page in pages:
        response = signed_in.get(page)
        assert response.status_code == 200, page
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy, page
        assert "frame-ancestors 'none'" in policy, page
        scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", response.content.decode())
        assert scripts == [], page  # only files from here, and JSON data
