"""The pages of models: the list, a model with its schedules and history, and a challenger's comparison."""

from __future__ import annotations

import json

import pytest

from tests.retraining import at, make_model
from training.models import Run
from training.retraining import champions, services

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(alice, workflows, fraud_request):
    return make_model(alice, fraud_request)


def scored(model, score: float, **fields) -> Run:
    run = services.retrain(model, model.owner, at("2026-11-02T03:00"), "Europe/Dublin")
    Run.objects.filter(pk=run.pk).update(status="succeeded", metrics={"roc_auc": score}, **fields)
    run.refresh_from_db()
    return run


def test_the_models_list_shows_champion_last_retrain_next_fire_and_a_sparkline(signed_in, model):
    first = scored(model, 0.81)
    champions.challenger_succeeded(first)
    scored(model, 0.83)
    services.add_schedule(model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin"}, now=at("2026-11-20T12:00"))
    page = signed_in.get("/models").content.decode()
    assert 'href="/models/fraud-daily"' in page
    assert f"#{first.pk}</a> roc_auc 0.8100" in page
    assert "2026-11-21 03:00 Europe/Dublin (+0000)" in page
    assert "<polyline points=" in page


def test_a_model_page_shows_five_fire_times_in_the_schedules_timezone_and_acts(signed_in, model):
    schedule = services.add_schedule(model, {"cron": "30 9 * * 1", "timezone": "America/New_York"})
    page = signed_in.get("/models/fraud-daily").content.decode()
    upcoming = services.upcoming(schedule)
    for moment in upcoming:
        assert moment.strftime("%Y-%m-%d 09:30") + " America/New_York" in page
    assert len(upcoming) == 5

    signed_in.post(f"/schedules/{schedule.pk}/pause")
    schedule.refresh_from_db()
    assert schedule.paused
    assert "On resume it would fire" in signed_in.get("/models/fraud-daily").content.decode()
    signed_in.post(f"/schedules/{schedule.pk}/resume")
    schedule.refresh_from_db()
    assert not schedule.paused
    response = signed_in.post(f"/schedules/{schedule.pk}/fire", follow=True)
    run = Run.objects.get(fire__schedule=schedule)
    assert f"Run #{run.pk} started." in response.content.decode()
    assert signed_in.get(f"/schedules/{schedule.pk}/explode").status_code == 404


def test_retrain_now_promote_reject_and_rollback_from_the_page(signed_in, model):
    response = signed_in.post("/models/fraud-daily/retrain")
    run = Run.objects.get(model=model)
    assert response.url == f"/runs/{run.pk}"
    first, second, third = (scored(model, score) for score in (0.80, 0.84, 0.82))
    for candidate in (first, second):
        signed_in.post("/models/fraud-daily/promote", {"run": candidate.pk, "reason": "by hand"})
    signed_in.post("/models/fraud-daily/reject", {"run": third.pk, "reason": "noisy week"})
    model.refresh_from_db()
    assert model.champion_id == second.pk
    page = signed_in.get("/models/fraud-daily").content.decode()
    assert "noisy week" in page
    assert "Rejected" in page
    signed_in.post("/models/fraud-daily/rollback")
    model.refresh_from_db()
    assert model.champion_id == first.pk
    refused = signed_in.post("/models/fraud-daily/rollback", follow=True).content.decode()
    assert "there is none before it" in refused
    assert signed_in.post("/models/fraud-daily/promote", {"run": "x"}).status_code == 404


def test_a_challengers_page_shows_its_comparison_clock_and_template(signed_in, model):
    champion = scored(model, 0.80)
    champions.challenger_succeeded(champion)  # the first success: champion
    comparison = {
        "champion_run": champion.pk,
        "metric": "roc_auc",
        "higher_is_better": True,
        "champion_score": 0.7912,
        "challenger_score": 0.8345,
        "difference": 0.0433,
        "interval": {"low": 0.021, "high": 0.065, "confidence": 0.95, "resamples": 2000},
        "rows": 1234,
        "guardrails": [{"name": "calibration", "passed": True, "reason": "Brier score 0.05 within the margin"}],
        "decision": "awaiting_approval",
        "reason": "waiting for a person; by the numbers it would be promoted",
    }
    challenger = scored(model, 0.8345, comparison=comparison)
    page = signed_in.get(f"/runs/{challenger.pk}").content.decode()
    assert "Against the champion" in page
    assert f"run #{champion.pk}</a> scored on this run's own 1234 holdout rows" in page
    assert "0.7912" in page
    assert "[0.0210, 0.0650]" in page
    assert "Awaiting approval" in page
    assert "2026-11-02 03:00 Europe/Dublin (+0000)" in page
    assert json.dumps(challenger.template, indent=2).replace('"', "&quot;") in page
    model_page = signed_in.get("/models/fraud-daily").content.decode()
    assert 'id="awaiting"' in model_page


def test_the_pages_need_a_signed_in_user(client, model):
    assert client.get("/models").status_code == 302
    assert client.get("/models/fraud-daily").status_code == 302


def test_every_move_of_a_champion_shows_in_the_admin(client, charlie, model):
    first, second = scored(model, 0.80), scored(model, 0.84)
    champions.promote(model, first, "alice", "first by hand")
    champions.promote(model, second, "bob", "won last week")
    client.force_login(charlie)
    page = client.get("/admin/training/promotion/").content.decode()
    assert page.count("Promoted") >= 2
    assert "bob" in page
    assert "won last week" in client.get(f"/admin/training/model/{model.pk}/change/").content.decode()


def test_a_run_becomes_a_model_with_sliding_dates_and_gets_a_schedule_from_the_page(
    signed_in, alice, workflows, fraud_request
):
    from training import services as runs

    run, _ = runs.submit(alice, fraud_request)
    assert 'id="make-model"' in signed_in.get(f"/runs/{run.pk}").content.decode()
    response = signed_in.post(f"/runs/{run.pk}/model", {"name": "fraud-weekly", "slide": "1"})
    assert response.url == "/models/fraud-weekly"
    model = run.project.models.get(name="fraud-weekly")
    assert model.request["data"]["date_range"] == {"start": "today-365d", "end": "today"}
    assert model.request["data"]["holdout_sampling"]["date_range"] == {"start": "today-31d", "end": "today"}

    refused = signed_in.post(f"/runs/{run.pk}/model", {"name": "fraud-weekly"}, follow=True).content.decode()
    assert "exists already" in refused

    added = signed_in.post(
        "/models/fraud-weekly/schedules",
        {"cron": "0 6 * * 1", "timezone": "Europe/Dublin", "concurrency": "replace", "catchup": "none"},
        follow=True,
    ).content.decode()
    schedule = model.schedules.get()
    assert (schedule.cron, schedule.timezone, schedule.concurrency, schedule.catchup) == (
        "0 6 * * 1",
        "Europe/Dublin",
        "replace",
        "none",
    )
    assert f"Schedule {schedule.pk} added" in added
    bad = signed_in.post("/models/fraud-weekly/schedules", {"cron": "every monday"}, follow=True).content.decode()
    assert "The schedule was not added: cron:" in bad
    assert model.schedules.count() == 1
