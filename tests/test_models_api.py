"""Models over the API: define one, retrain it now, schedule it, and move its champion."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from rest_framework.test import APIClient

from tests.conftest import train_queued
from tests.retraining import sliding
from training.models import Model, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def body(workflows, fraud_request) -> dict:
    return {"name": "fraud-daily", "project": "fraud", "request": sliding(fraud_request)}


@pytest.fixture
def model(api, body) -> dict:
    response = api.post("/api/v1/models", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_model_is_defined_with_defaults_from_the_metric_registry(model, body):
    assert model["name"] == "fraud-daily"
    assert model["project"] == "fraud"
    assert model["metric"] == "roc_auc"
    assert model["higher_is_better"] is True
    assert model["promotion"]["mode"] == "auto"
    assert model["promotion"]["confidence"] == 0.95
    assert model["champion"] is None
    assert model["latest_run"] is None
    assert model["schedules"] == []
    assert model["next_fire_time"] is None
    assert model["promotion_history"] == []
    assert model["request"]["data"]["date_range"] == {"start": "today-12m", "end": "today"}


def test_a_lower_is_better_metric_is_kept_with_its_direction(api, body):
    answer = api.post("/api/v1/models", {**body, "metric": "log_loss"}, format="json").json()
    assert (answer["metric"], answer["higher_is_better"]) == ("log_loss", False)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": "no spaces"}, "name", "letters, digits"),
        ({"colour": "red"}, "colour", "Unknown field"),
        ({"metric": "rmse"}, "metric", "Unknown metric 'rmse' for a classification workflow"),
        ({"promotion": {"mode": "yolo"}}, "promotion.mode", "choose one of auto, approval, shadow"),
        ({"promotion": {"confidence": 1.5}}, "promotion.confidence", "from 0.5"),
        ({"promotion": {"guardrails": {"brier": 1}}}, "promotion.guardrails.brier", "Unknown guardrail"),
        ({"request": "yes"}, "request", "Must be a JSON object"),
    ],
)
def test_a_bad_model_is_refused_naming_the_field(api, body, change, field, words):
    response = api.post("/api/v1/models", {**body, **change}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert not Model.objects.exists()


def test_a_misspelt_relative_date_is_refused_at_its_path(api, body):
    body["request"]["data"]["date_range"]["start"] = "todya-3m"
    errors = api.post("/api/v1/models", body, format="json").json()["errors"]
    assert "'todya-3m' is not a date" in errors["request.data.date_range.start"][0]


def test_the_request_must_be_of_the_models_project_and_names_are_unique(api, body, model):
    other = {**body, "name": "other", "request": {**body["request"], "project": "payments"}}
    assert "request.project" in api.post("/api/v1/models", other, format="json").json()["errors"]
    again = api.post("/api/v1/models", body, format="json")
    assert again.status_code == 400
    assert "exists already" in again.json()["errors"]["name"][0]


def test_models_need_a_signed_in_user(model):
    assert APIClient().get("/api/v1/models").status_code == 401
    assert APIClient().get("/api/v1/models/fraud-daily").status_code == 401


def test_retrain_now_resolves_the_window_from_the_moment_and_the_run_keeps_both(api, model):
    response = api.post("/api/v1/models/fraud-daily/runs", {"timezone": "Pacific/Kiritimati"}, format="json")
    assert response.status_code == 201, response.json()
    run = response.json()
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert run["model"] == "fraud-daily"
    assert run["timezone"] == "Pacific/Kiritimati"
    assert run["scheduled_time"].endswith("+14:00")
    detail = api.get(f"/api/v1/runs/{run['id']}").json()
    assert detail["template"]["data"]["date_range"] == {"start": "today-12m", "end": "today"}
    assert detail["request"]["data"]["date_range"]["end"] == today.isoformat()
    listed = api.get("/api/v1/models/fraud-daily/runs").json()["results"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert api.get("/api/v1/models/fraud-daily").json()["latest_run"]["id"] == run["id"]
    bad = api.post("/api/v1/models/fraud-daily/runs", {"timezone": "Mars/Olympus"}, format="json")
    assert bad.status_code == 400
    assert "IANA" in bad.json()["errors"]["timezone"][0]


def test_a_schedule_answers_with_its_id_and_next_fire_times_in_its_timezone(api, model):
    body = {"cron": "0 3 * * *", "timezone": "Europe/Dublin", "concurrency": "forbid", "catchup": "none"}
    response = api.post("/api/v1/models/fraud-daily/schedules", body, format="json")
    assert response.status_code == 201, response.json()
    schedule = response.json()
    assert isinstance(schedule["id"], int)
    assert (schedule["concurrency"], schedule["catchup"], schedule["paused"]) == ("forbid", "none", False)
    times = [datetime.fromisoformat(t) for t in schedule["next_fire_times"]]
    assert len(times) == 5
    assert all((t.hour, t.minute) == (3, 0) for t in times)
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(days=1)] * 4
    assert all(t.utcoffset() == ZoneInfo("Europe/Dublin").utcoffset(t.replace(tzinfo=None)) for t in times)
    detail = api.get("/api/v1/models/fraud-daily").json()
    assert [s["id"] for s in detail["schedules"]] == [schedule["id"]]
    assert detail["next_fire_time"] == schedule["next_fire_times"][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "0 3 * *"}, "cron"),
        ({"cron": "99 3 * * *"}, "cron"),
        ({"cron": "0 0 3 * * * *"}, "cron"),
        ({"cron": "0 3 * * " + "1," * 200 + "2"}, "cron"),
        ({"cron": 3}, "cron"),
        ({"timezone": "Europe/Dublni"}, "timezone"),
        ({"concurrency": "queue"}, "concurrency"),
        ({"catchup": "all"}, "catchup"),
        ({"paused": "no"}, "paused"),
        ({"every": "day"}, "every"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(api, model, change, field):
    response = api.post("/api/v1/models/fraud-daily/schedules", {"cron": "0 3 * * *", **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_pause_resume_fire_and_backfill_over_the_api(api, model):
    schedule = api.post("/api/v1/models/fraud-daily/schedules", {"cron": "0 3 * * *"}, format="json").json()
    base = f"/api/v1/schedules/{schedule['id']}"
    assert api.post(f"{base}/pause").json()["paused"] is True
    assert api.get("/api/v1/models/fraud-daily").json()["next_fire_time"] is None
    assert api.post(f"{base}/resume").json()["paused"] is False

    fired = api.post(f"{base}/fire")
    assert fired.status_code == 201
    assert (fired.json()["kind"], fired.json()["outcome"]) == ("manual", "started")
    again = api.post(f"{base}/fire").json()  # the first run has not ended: concurrency forbid
    assert again["outcome"] == "skipped"
    assert f"run {fired.json()['run']}" in again["reason"]
    assert [f["outcome"] for f in api.get(f"{base}/fires").json()] == ["skipped", "started"]

    start = (date.today() - timedelta(days=10)).isoformat()
    end = (date.today() - timedelta(days=8)).isoformat()
    dry = api.post(f"{base}/backfill", {"start": start, "end": end, "dry_run": True}, format="json")
    assert dry.status_code == 200
    assert dry.json()["backfill"] is None
    assert len(dry.json()["fire_times"]) == 3
    real = api.post(f"{base}/backfill", {"start": start, "end": end, "parallelism": 2}, format="json")
    assert real.status_code == 201
    assert real.json()["fire_times"] == dry.json()["fire_times"]
    future = api.post(f"{base}/backfill", {"start": start, "end": "2999-01-01"}, format="json")
    assert future.status_code == 400
    assert "end" in future.json()["errors"]
    bad = api.post(f"{base}/backfill", {"start": "yesterday", "end": end, "parallelism": 0}, format="json")
    assert "start" in bad.json()["errors"]
    assert api.post("/api/v1/schedules/999999/pause").status_code == 404


def succeeded(model_name: str, score: float) -> Run:
    run = Run.objects.filter(model__name=model_name).first()
    clone = Run.objects.get(pk=run.pk)
    clone.pk = None
    clone.status = "succeeded"
    clone.metrics = {"roc_auc": score}
    clone.save()
    return clone


def test_promote_and_rollback_move_the_champion_and_each_move_is_in_the_history(api, model):
    api.post("/api/v1/models/fraud-daily/runs")
    first, second, third = (succeeded("fraud-daily", score) for score in (0.80, 0.84, 0.86))
    url = "/api/v1/models/fraud-daily"
    for run in (first, second, third):
        response = api.post(f"{url}/promote", {"run": run.pk, "reason": "better on last week"}, format="json")
        assert response.status_code == 200, response.json()
    moved = api.post(f"{url}/promote", {"run_id": third.pk}, format="json")
    assert moved.status_code == 409
    assert "champion already" in moved.json()["detail"]

    back = api.post(f"{url}/rollback", {"reason": "alerts doubled"}, format="json").json()
    assert (back["move"], back["run"], back["previous_champion"]) == ("rolled_back", second.pk, third.pk)
    assert (back["champion_score"], back["challenger_score"]) == (0.86, 0.84)
    assert api.get(url).json()["champion"] == second.pk
    assert api.post(f"{url}/rollback").json()["run"] == first.pk
    assert api.post(f"{url}/rollback").status_code == 409  # the first champion has none before it

    history = api.get(url).json()["promotion_history"]
    assert [(h["move"], h["run"], h["actor"]) for h in history] == [
        ("rolled_back", first.pk, "alice"),
        ("rolled_back", second.pk, "alice"),
        ("promoted", third.pk, "alice"),
        ("promoted", second.pk, "alice"),
        ("promoted", first.pk, "alice"),
    ]
    queued = Run.objects.filter(model__name="fraud-daily", status="queued").first()
    refused = api.post(f"{url}/promote", {"run": queued.pk}, format="json")
    assert refused.status_code == 409
    assert "has not succeeded" in refused.json()["detail"]
    assert api.post(f"{url}/promote", {"run": "one"}, format="json").status_code == 400


def test_the_first_successful_retrain_becomes_champion(api, alice, model):
    run = train_queued(Run.objects.get(pk=api.post("/api/v1/models/fraud-daily/runs").json()["id"]))

    detail = api.get("/api/v1/models/fraud-daily").json()
    assert detail["champion"] == run.pk
    first = detail["promotion_history"][0]
    assert (first["move"], first["actor"], first["previous_champion"]) == ("promoted", "railyard", None)
    assert first["challenger_score"] == run.metrics["roc_auc"]
    assert detail["latest_run"]["score"] == first["challenger_score"]


def test_approval_waits_for_a_person_who_promotes_or_rejects_with_the_same_row_scores(api, body):
    api.post("/api/v1/models", {**body, "promotion": {"mode": "approval"}}, format="json")
    api.post("/api/v1/models/fraud-daily/runs")
    champion = succeeded("fraud-daily", 0.80)
    api.post("/api/v1/models/fraud-daily/promote", {"run": champion.pk}, format="json")
    waiting = []
    for challenger_score in (0.83, 0.85):
        run = succeeded("fraud-daily", challenger_score)
        run.comparison = {
            "champion_run": champion.pk,
            "metric": "roc_auc",
            "champion_score": 0.79,  # the champion on this challenger's holdout rows
            "challenger_score": challenger_score,
            "decision": "awaiting_approval",
            "reason": "waiting for a person; by the numbers it would be promoted",
        }
        run.save()
        waiting.append(run)
    url = "/api/v1/models/fraud-daily"
    assert api.get(url).json()["awaiting_approval"] == [waiting[1].pk, waiting[0].pk]

    rejected = api.post(f"{url}/reject", {"run": waiting[0].pk, "reason": "holiday traffic"}, format="json").json()
    assert (rejected["move"], rejected["champion_score"], rejected["challenger_score"]) == ("rejected", 0.79, 0.83)
    assert api.get(url).json()["champion"] == champion.pk
    assert api.post(f"{url}/reject", {"run": waiting[0].pk}, format="json").status_code == 409

    promoted = api.post(f"{url}/promote", {"run": waiting[1].pk}, format="json").json()
    assert (promoted["champion_score"], promoted["challenger_score"]) == (0.79, 0.85)
    detail = api.get(url).json()
    assert detail["champion"] == waiting[1].pk
    assert detail["awaiting_approval"] == []
    assert [h["move"] for h in detail["promotion_history"]] == ["promoted", "rejected", "promoted"]


def test_every_bad_field_of_a_model_is_named_at_once(api, body):
    body["request"]["train"]["label"] = ""
    answer = api.post("/api/v1/models", {**body, "name": "a b", "promotion": {"mode": "yolo"}}, format="json")
    assert answer.status_code == 400
    assert {"name", "request.train.label", "promotion.mode"} <= set(answer.json()["errors"])


def test_the_model_list_pages_newest_first_with_a_fixed_number_of_queries(api, body):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(3):
        api.post("/api/v1/models", {**body, "name": f"m{n}"}, format="json")
        api.post(f"/api/v1/models/m{n}/runs")
    with CaptureQueriesContext(connection) as few:
        first = api.get("/api/v1/models?page_size=2").json()
    for n in range(3, 8):
        api.post("/api/v1/models", {**body, "name": f"m{n}"}, format="json")
        api.post(f"/api/v1/models/m{n}/runs")
    with CaptureQueriesContext(connection) as many:
        api.get("/api/v1/models?page_size=7")
    assert [m["name"] for m in first["results"]] == ["m2", "m1"]
    assert first["results"][0]["latest_run"]["status"] == "queued"
    rest = api.get(first["next"]).json()
    assert [m["name"] for m in rest["results"]] == ["m0"]
    assert len(few) == len(many)
    assert [m["name"] for m in api.get("/api/v1/models?project=nothing").json()["results"]] == []


def test_a_models_template_metric_and_policy_change_and_earlier_runs_keep_theirs(api, model):
    first = api.post("/api/v1/models/fraud-daily/runs").json()
    detail = api.get("/api/v1/models/fraud-daily").json()
    request = detail["request"]
    request["data"]["date_range"]["start"] = "today-6m"
    change = {"request": request, "metric": "average_precision", "promotion": {"mode": "approval"}}
    changed = api.patch("/api/v1/models/fraud-daily", change, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["metric"] == "average_precision"
    assert changed.json()["promotion"]["mode"] == "approval"
    assert changed.json()["request"]["data"]["date_range"]["start"] == "today-6m"
    second = api.post("/api/v1/models/fraud-daily/runs").json()
    assert api.get(f"/api/v1/runs/{second['id']}").json()["template"]["data"]["date_range"]["start"] == "today-6m"
    assert api.get(f"/api/v1/runs/{first['id']}").json()["template"]["data"]["date_range"]["start"] == "today-12m"

    bad = api.patch("/api/v1/models/fraud-daily", {"metric": "r2"}, format="json")
    assert bad.status_code == 400
    assert "for a classification workflow" in bad.json()["errors"]["metric"][0]
    renamed = api.patch("/api/v1/models/fraud-daily", {"name": "other"}, format="json")
    assert renamed.json()["errors"] == {"name": ["Unknown field."]}
    assert api.patch("/api/v1/models/fraud-daily", {}, format="json").status_code == 400
    assert api.get("/api/v1/models/fraud-daily").json()["metric"] == "average_precision"


def test_options_describes_the_model_routes(api, model):
    for path in ("/api/v1/models", "/api/v1/models/fraud-daily", "/api/v1/webhooks"):
        assert api.options(path).status_code == 200
