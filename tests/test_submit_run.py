"""Submitting training requests over the REST API, and reading runs back."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from training import services
from training.models import ApiToken, IdempotencyKey, Membership, Project, Role, Run, RunEvent

pytestmark = pytest.mark.usefixtures("workflows")


def post_run(api: APIClient, payload: dict, **headers):
    return api.post("/api/v1/runs", data=json.dumps(payload), content_type="application/json", **headers)


def test_it_creates_a_queued_run(api, alice, fraud_request):
    response = post_run(api, fraud_request)

    assert response.status_code == 201
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert body["status"] == "queued"
    assert body["url"].endswith(f"/api/v1/runs/{run.pk}")
    assert run.owner == alice
    assert run.user == "demo"  # kept as given, not the account
    assert run.project.name == "fraud"
    assert run.workflow.name == "gradient_boosting"
    assert run.request == fraud_request
    assert run.artifact_uri.endswith(f"/runs/{run.pk}/attempt-1")
    assert list(run.events.values_list("old_status", "new_status", "actor")) == [("", "queued", "alice")]


def test_it_enqueues_the_launch_when_the_run_is_created(api, fraud_request, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_run(api, fraud_request)

    assert [task.func() for task in OrmQ.objects.all()] == ["training.tasks.dispatch"]


def test_it_resolves_relative_file_paths_against_the_data_directory(api, fraud_request, railyard_dirs, dataset):
    target = railyard_dirs / "data" / "charges.parquet"
    target.write_bytes(dataset["charges"].read_bytes())
    fraud_request["data"]["features"][0]["path"] = "charges.parquet"

    run = Run.objects.get(pk=post_run(api, fraud_request).json()["id"])

    assert run.request["data"]["features"][0]["path"] == "charges.parquet"
    assert run.spec["data"]["features"][0]["path"] == str(target)


def test_it_uses_the_account_name_when_user_is_missing(api, fraud_request):
    del fraud_request["user"]
    run = Run.objects.get(pk=post_run(api, fraud_request).json()["id"])
    assert run.user == "alice"


def test_it_creates_a_project_on_first_use(api, fraud_request):
    fraud_request["project"] = "churn-2026"
    post_run(api, fraud_request)
    post_run(api, fraud_request)
    assert Run.objects.filter(project__name="churn-2026").count() == 2


def test_it_returns_the_same_run_for_a_repeated_idempotency_key(api, fraud_request):
    first = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="weekly-2026-47")
    second = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="weekly-2026-47")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Run.objects.count() == 1


def test_it_keeps_idempotency_keys_per_account(api, bob, fraud_request):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(bob)[1]}")
    mine = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="k1").json()["id"]
    Membership.objects.create(project=Project.objects.get(name="fraud"), user=bob, role=Role.MEMBER)
    theirs = post_run(other, fraud_request, HTTP_IDEMPOTENCY_KEY="k1").json()["id"]
    assert mine != theirs


def test_it_refuses_an_idempotency_key_reused_with_another_request(api, fraud_request):
    first = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="weekly-2026-47")
    fraud_request["train"]["custom_params"] = {"max_iter": 31}

    reused = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="weekly-2026-47")

    assert reused.status_code == 422
    message = reused.json()["errors"]["Idempotency-Key"][0]
    assert f"used with a different request (run {first.json()['id']})" in message
    assert Run.objects.count() == 1


def test_it_refuses_an_idempotency_key_longer_than_255_characters(api, fraud_request):
    for key in ("k" * 255 + "a", "k" * 255 + "b"):
        response = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY=key)

        assert response.status_code == 400
        assert response.json()["errors"]["Idempotency-Key"] == ["Must be at most 255 characters (it has 256)."]
    assert Run.objects.count() == 0
    assert post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="k" * 255).status_code == 201


def test_an_idempotency_key_expires_after_its_lifetime(api, fraud_request, settings):
    settings.RAILYARD = {**settings.RAILYARD, "IDEMPOTENCY_KEY_TTL_HOURS": 2}
    first = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="nightly").json()["id"]
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=1))
    assert post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="nightly").json()["id"] == first

    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=2, seconds=1))
    fraud_request["train"]["custom_params"] = {"max_iter": 31}  # a new request may use the key now
    second = post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="nightly")

    assert second.status_code == 201
    assert second.json()["id"] != first
    assert IdempotencyKey.objects.get().run_id == second.json()["id"]


def test_the_worker_forgets_expired_idempotency_keys(api, fraud_request):
    post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="old")
    post_run(api, fraud_request, HTTP_IDEMPOTENCY_KEY="fresh")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    assert services.forget_expired_idempotency_keys() == 1

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert Run.objects.count() == 2  # the runs stay; only the keys are forgotten


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_run_for_concurrent_repeats(alice, catalogue, fraud_request):
    from training import images

    images.sync(images.DEFAULT, catalogue)
    barrier = threading.Barrier(6)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait()
            run, created = services.submit(alice, fraud_request, idempotency_key="nightly")
            results.append((run.pk, created))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Run.objects.count() == 1


def test_it_refuses_anonymous_requests(fraud_request):
    client = APIClient()
    assert post_run(client, fraud_request).status_code == 401
    assert client.get("/api/v1/runs").status_code == 401
    assert client.get("/api/v1/workflows").status_code == 401


def test_it_accepts_session_authentication(client, alice, fraud_request):
    client.force_login(alice)
    response = client.post("/api/v1/runs", data=json.dumps(fraud_request), content_type="application/json")
    assert response.status_code == 201


def make_runs(owner, fraud_request, n: int, **overrides) -> list[Run]:
    runs = []
    for i in range(n):
        request = {**fraud_request, **overrides, "model_description": f"run {i}"}
        runs.append(services.submit(owner, request)[0])
    return runs


def test_it_lists_runs_newest_first_with_a_fixed_number_of_queries(api, alice, fraud_request):
    runs = make_runs(alice, fraud_request, 3)
    api.get("/api/v1/runs")  # the token's last use is written at most once a minute: now
    with CaptureQueriesContext(connection) as few:
        response = api.get("/api/v1/runs")
    make_runs(alice, fraud_request, 5)
    with CaptureQueriesContext(connection) as many:
        api.get("/api/v1/runs")

    assert [r["id"] for r in response.json()["results"]] == [r.pk for r in reversed(runs)]
    assert "count" not in response.json()  # no page counts the table
    # token lookup (its last use written at most once a minute) and the page: the same however many runs
    assert len(few) == len(many) == 2
    page = next(q["sql"] for q in many.captured_queries if "training_run" in q["sql"])
    assert '"request"' not in page  # the kilobytes of request and spec JSON stay out of lists
    assert '"spec"' not in page


def test_it_filters_the_run_list(api, alice, bob, fraud_request):
    make_runs(alice, fraud_request, 2)
    make_runs(alice, fraud_request, 1, project="churn")
    Membership.objects.create(project=Project.objects.get(name="fraud"), user=bob, role=Role.MEMBER)
    make_runs(bob, fraud_request, 1, user="bob")
    cancelled = make_runs(alice, fraud_request, 1)[0]
    services.cancel(cancelled, actor="alice")

    def ids(**params):
        return {r["id"] for r in api.get("/api/v1/runs", params).json()["results"]}

    assert len(ids(project="fraud")) == 4
    assert len(ids(project="churn")) == 1
    assert ids(status="cancelled") == {cancelled.pk}
    assert len(ids(user="bob")) == 1
    assert len(ids(workflow_name="gradient_boosting")) == 5
    assert ids(workflow_name="random_forest") == set()


def test_it_pages_the_run_list_by_cursor_keeping_the_filters(api, alice, fraud_request):
    runs = make_runs(alice, fraud_request, 5)
    make_runs(alice, fraud_request, 2, project="churn")

    first = api.get("/api/v1/runs", {"page_size": 2, "project": "fraud"}).json()
    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()

    assert "cursor=" in first["next"]
    assert "project=fraud" in first["next"]
    ids = [[r["id"] for r in page["results"]] for page in (first, second, third)]
    assert ids == [[runs[4].pk, runs[3].pk], [runs[2].pk, runs[1].pk], [runs[0].pk]]
    assert third["next"] is None
    assert first["previous"] is None


def test_older_clients_may_still_page_by_number(api, alice, fraud_request):
    runs = make_runs(alice, fraud_request, 3)
    first = api.get("/api/v1/runs", {"page_size": 2, "page": 1}).json()
    second = api.get(first["next"]).json()
    assert [r["id"] for r in first["results"]] == [runs[2].pk, runs[1].pk]
    assert [r["id"] for r in second["results"]] == [runs[0].pk]
    assert "page=2" in first["next"]
    assert second["next"] is None
    assert "page=1" in second["previous"]
    assert api.get("/api/v1/runs", {"page_size": 2, "page": 3}).status_code == 404  # past the last page


def test_it_searches_run_descriptions(api, alice, fraud_request):
    make_runs(alice, fraud_request, 2)
    churn = services.submit(alice, {**fraud_request, "model_description": "Weekly CHURN model"})[0]
    assert [r["id"] for r in api.get("/api/v1/runs", {"q": "churn"}).json()["results"]] == [churn.pk]


def test_it_shows_a_run_with_its_events(api, alice, fraud_request):
    run = make_runs(alice, fraud_request, 1)[0]
    services.cancel(run, actor="alice")

    body = api.get(f"/api/v1/runs/{run.pk}").json()

    assert body["status"] == "cancelled"
    assert body["request"] == {**fraud_request, "model_description": "run 0"}
    assert [e["new_status"] for e in body["events"]] == ["queued", "cancelled"]
    assert body["events"][1]["actor"] == "alice"
    assert {"metrics", "data_summary", "artifacts", "failure_reason", "created_at", "finished_at"} <= set(body)
    assert body["finished_at"] is not None


def test_it_returns_404_for_an_unknown_run(api):
    assert api.get("/api/v1/runs/999").status_code == 404


def test_it_cancels_a_queued_run(api, alice, fraud_request):
    run = make_runs(alice, fraud_request, 1)[0]

    response = api.post(f"/api/v1/runs/{run.pk}/cancel")

    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert RunEvent.objects.filter(run=run, new_status="cancelled", actor="alice").exists()


def test_it_refuses_to_cancel_a_finished_run(api, alice, fraud_request):
    run = make_runs(alice, fraud_request, 1)[0]
    services.cancel(run, actor="alice")
    response = api.post(f"/api/v1/runs/{run.pk}/cancel")
    assert response.status_code == 409
    assert "already ended" in response.json()["detail"]


def test_it_retries_a_run_as_a_new_linked_run(api, alice, fraud_request):
    run = make_runs(alice, fraud_request, 1)[0]
    services.cancel(run, actor="alice")

    response = api.post(f"/api/v1/runs/{run.pk}/retry")

    assert response.status_code == 201
    retry = Run.objects.get(pk=response.json()["id"])
    assert retry.pk != run.pk
    assert retry.retried_from == run
    assert retry.request == run.request
    assert retry.status == "queued"
    assert retry.events.get().reason == f"retry of run {run.pk}"


def test_it_returns_an_empty_log_before_launch(api, alice, fraud_request):
    run = make_runs(alice, fraud_request, 1)[0]
    body = api.get(f"/api/v1/runs/{run.pk}/logs").json()
    assert body == {"run": run.pk, "status": "queued", "log": ""}
    assert api.get(f"/api/v1/runs/{run.pk}/logs", {"tail": "x"}).status_code == 400


def test_it_lists_the_workflow_catalogue(api, catalogue):
    body = api.get("/api/v1/workflows").json()
    names = {w["name"] for w in body}
    assert names == {w["name"] for w in catalogue}
    assert {
        "logistic_regression",
        "gradient_boosting",
        "random_forest",
        "neural_network",
        "linear_regression",
        "gradient_boosting_regressor",
    } <= names
    boosting = next(w for w in body if w["name"] == "gradient_boosting")
    assert boosting["task"] == "classification"
    assert boosting["default_params"]["max_iter"] == 100


def test_it_lists_compute_resources(api):
    body = {r["name"]: r for r in api.get("/api/v1/compute-resources").json()}
    assert set(body) == {"cpu", "highmem", "gpu"}
    assert body["cpu"]["default"] is True
    assert body["gpu"]["limits"]["nvidia.com/gpu"] == "1"


def test_it_serves_the_openapi_schema_and_docs(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/cancel",
        "/api/v1/runs/{id}/retry",
        "/api/v1/runs/{id}/logs",
        "/api/v1/runs/{id}/artifacts/{name}",
        "/api/v1/workflows",
        "/api/v1/compute-resources",
    } <= set(paths)
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    # Swagger UI from the installed sidecar package on this origin, never a CDN's scripts.
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "swagger" in html.lower()
    assert api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_the_schema_describes_the_request_and_the_error_answers(api):
    schema = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)

    post = schema["paths"]["/api/v1/runs"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["project", "data"]
    assert body["oneOf"] == [{"required": ["train"]}, {"required": ["compose"]}]  # one of the two
    assert set(body["properties"]["train"]["properties"]["segment_by"]["properties"]) == {
        "column",
        "min_rows",
        "include_generic",
        "max_segments",
        "jobs",
        "min_improvement",
    }
    predicate = body["properties"]["data"]["properties"]["filters"]["items"]["properties"]["predicate"]
    assert predicate["enum"] == ["Eq", "NotEq", "Gt", "GtEq", "Lt", "LtEq", "IsIn", "NotIn", "IsNull", "NotNull"]
    assert {"200", "201", "400", "401", "409", "422"} <= set(post["responses"])
    resources = schema["paths"]["/api/v1/compute-resources"]["get"]["responses"]["200"]
    assert resources["content"]["application/json"]["schema"]["type"] == "array"
    assert isinstance(api.get("/api/v1/compute-resources").json(), list)
