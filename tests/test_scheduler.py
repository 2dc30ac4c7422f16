"""The scheduler's tick with time injected: DST, downtime, pause and resume, concurrency, backfills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.retraining import DUBLIN, at, finish, make_model
from training.models import Fire, Run
from training.retraining import scheduler, services

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(alice, workflows, fraud_request):
    return make_model(alice, fraud_request)


def ticks(start: datetime, end: datetime, every: timedelta = timedelta(minutes=15)) -> dict[str, int]:
    """Tick the scheduler from start to end, as a worker would, adding up what it did."""
    total: dict[str, int] = {}
    moment = start
    while moment <= end:
        for key, value in scheduler.tick(moment).items():
            total[key] = total.get(key, 0) + value
        moment += every
    return total


def fire_times(schedule) -> list[str]:
    return [fire.scheduled_time.astimezone(DUBLIN).isoformat() for fire in schedule.fires.order_by("scheduled_time")]


@pytest.mark.parametrize(
    ("start", "end", "offsets"),
    [
        # Clocks go forward at 01:00 on 29 March 2026: 03:00 is GMT (+00:00) before, IST (+01:00) from that day.
        ("2026-03-27T12:00", "2026-03-31T12:00", ["+00:00", "+01:00", "+01:00", "+01:00"]),
        # Clocks go back at 02:00 on 25 October 2026: IST before, GMT from that day.
        ("2026-10-23T12:00", "2026-10-27T12:00", ["+01:00", "+00:00", "+00:00", "+00:00"]),
    ],
)
def test_a_daily_dublin_schedule_fires_once_a_day_at_local_three_across_a_dst_change(model, start, end, offsets):
    schedule = services.add_schedule(
        model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin", "concurrency": "allow"}, now=at(start)
    )
    counts = ticks(at(start), at(end))

    days = [(at(start) + timedelta(days=n)).date() for n in range(1, 5)]
    assert fire_times(schedule) == [f"{day}T03:00:00{offset}" for day, offset in zip(days, offsets, strict=True)]
    assert counts["started"] == 4
    assert counts["missed"] == 0
    runs = Run.objects.filter(model=model).order_by("scheduled_time")
    # Each run's clock is its fire time, in the schedule's timezone; its window ends that local day.
    assert [run.scheduled_time.astimezone(DUBLIN).hour for run in runs] == [3, 3, 3, 3]
    assert {run.timezone for run in runs} == {"Europe/Dublin"}
    assert [run.request["data"]["date_range"]["end"] for run in runs] == [day.isoformat() for day in days]
    assert runs[0].template["data"]["date_range"] == {"start": "today-12m", "end": "today"}


def test_a_time_in_the_repeated_hour_fires_once(model):
    schedule = services.add_schedule(
        model, {"cron": "30 1 * * *", "timezone": "Europe/Dublin", "concurrency": "allow"}, now=at("2026-10-24T12:00")
    )
    ticks(at("2026-10-24T12:00"), at("2026-10-26T12:00"), every=timedelta(minutes=5))
    assert fire_times(schedule) == ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]


@pytest.mark.parametrize(("catchup", "fired"), [("latest", 1), ("none", 0)])
def test_a_worker_down_for_three_days_fires_per_catchup(model, catchup, fired):
    schedule = services.add_schedule(
        model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin", "catchup": catchup}, now=at("2026-11-01T12:00")
    )
    back = at("2026-11-05T09:30")  # 03:00 on the 2nd, 3rd, 4th and 5th passed unseen
    counts = scheduler.tick(back)
    assert list(schedule.fires.values_list("kind", "scheduled_time")) == (
        [("catchup", at("2026-11-05T03:00"))] if fired else []
    )
    assert counts["missed"] == 4 - fired
    # Later ticks fire nothing more until the next time, which fires as usual.
    ticks(back, at("2026-11-06T02:59"))
    assert schedule.fires.count() == fired
    scheduler.tick(at("2026-11-06T03:00"))
    assert schedule.fires.count() == fired + 1
    assert schedule.fires.first().kind == "scheduled"


def test_resume_fires_nothing_missed_while_paused(model):
    schedule = services.add_schedule(model, {"cron": "0 * * * *", "concurrency": "allow"}, now=at("2026-11-01T00:30"))
    ticks(at("2026-11-01T00:30"), at("2026-11-01T02:30"))
    assert schedule.fires.count() == 2
    services.pause(schedule)
    ticks(at("2026-11-01T02:30"), at("2026-11-01T10:30"))
    assert schedule.fires.count() == 2  # nothing while paused
    services.resume(schedule, now=at("2026-11-01T10:40"))
    schedule.refresh_from_db()
    assert schedule.next_fire_at == at("2026-11-01T11:00")
    scheduler.tick(at("2026-11-01T10:45"))
    assert schedule.fires.count() == 2  # the eight hours passed while paused are not fired
    scheduler.tick(at("2026-11-01T11:00"))
    assert schedule.fires.count() == 3


def test_forbid_skips_a_fire_while_the_previous_run_is_active_and_replace_cancels_it(model):
    forbid = services.add_schedule(model, {"cron": "0 * * * *"}, now=at("2026-11-01T00:30"))
    scheduler.tick(at("2026-11-01T01:00"))
    scheduler.tick(at("2026-11-01T02:00"))
    first, second = forbid.fires.order_by("scheduled_time")
    assert (first.outcome, second.outcome, second.run) == ("started", "skipped", None)
    assert f"run {first.run_id} of an earlier fire is still active" in second.reason
    finish([first.run])
    scheduler.tick(at("2026-11-01T03:00"))
    assert forbid.fires.first().outcome == "started"

    services.pause(forbid)
    replace = services.add_schedule(model, {"cron": "0 * * * *", "concurrency": "replace"}, now=at("2026-11-01T03:30"))
    scheduler.tick(at("2026-11-01T04:00"))
    scheduler.tick(at("2026-11-01T05:00"))
    earlier, later = replace.fires.order_by("scheduled_time")
    earlier.run.refresh_from_db()
    assert earlier.run.status == "cancelled"
    assert later.outcome == "started"
    assert f"cancelled run {earlier.run_id}" in later.reason


def test_a_fire_whose_request_no_longer_validates_is_recorded_with_its_reason(model):
    schedule = services.add_schedule(model, {"cron": "0 3 * * *"}, now=at("2026-11-01T00:00"))
    model.request["train"]["workflow_name"] = "removed_workflow"
    model.save()
    counts = scheduler.tick(at("2026-11-01T03:00"))
    fire = schedule.fires.get()
    assert counts["failed"] == 1
    assert fire.outcome == "failed"
    assert fire.run is None
    assert "train.workflow_name" in fire.reason


def test_a_backfill_of_30_days_fires_30_runs_with_at_most_parallelism_active(model):
    schedule = services.add_schedule(
        model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin", "paused": True}, now=at("2026-11-20T00:00")
    )
    body = {"start": "2026-09-01", "end": "2026-09-30", "parallelism": 3}
    _, planned, done = services.backfill(schedule, {**body, "dry_run": True}, "alice")
    assert len(planned) == 30
    assert done == []
    assert not Fire.objects.exists()
    backfill, times, _ = services.backfill(schedule, body, "alice")
    assert times == planned

    most_active = 0
    for _ in range(40):
        scheduler.feed_backfills()
        active = list(Run.objects.filter(fire__backfill=backfill, status="queued"))
        most_active = max(most_active, len(active))
        assert len(active) <= 3
        finish(active)
    runs = Run.objects.filter(fire__backfill=backfill).order_by("scheduled_time")
    assert runs.count() == 30
    assert most_active == 3
    # Each run's window ends on its own fire day.
    assert [run.request["data"]["date_range"]["end"] for run in runs] == [f"2026-09-{d:02d}" for d in range(1, 31)]
    # A second backfill of the same range finds every time fired already.
    _, again, done = services.backfill(schedule, {**body, "dry_run": True}, "alice")
    assert again == []
    assert len(done) == 30


def test_fire_now_makes_a_run_whose_dates_resolve_from_the_moment(model):
    schedule = services.add_schedule(model, {"cron": "0 3 * * *", "timezone": "Europe/Dublin"})
    fire = services.fire_now(schedule, "alice")
    today = datetime.now(UTC).astimezone(DUBLIN).date()
    assert fire.kind == "manual"
    assert fire.outcome == "started"
    assert fire.run.request["data"]["date_range"]["end"] == today.isoformat()


def test_a_schedule_that_cannot_fire_does_not_stop_the_others_and_stays_due(model, monkeypatch):
    broken = services.add_schedule(model, {"cron": "0 3 * * *"}, now=at("2026-11-01T00:00"))
    healthy = services.add_schedule(model, {"cron": "0 3 * * *"}, now=at("2026-11-01T00:00"))
    real_fire = services.fire

    def fire(schedule, *args, **kwargs):
        if schedule.pk == broken.pk:
            raise RuntimeError("the database went away")
        return real_fire(schedule, *args, **kwargs)

    monkeypatch.setattr(services, "fire", fire)
    counts = scheduler.tick(at("2026-11-01T03:00"))
    assert (counts["started"], counts["errors"]) == (1, 1)
    assert healthy.fires.count() == 1
    broken.refresh_from_db()
    assert broken.next_fire_at == at("2026-11-01T03:00")  # still due: the next tick tries again
    monkeypatch.setattr(services, "fire", real_fire)
    assert scheduler.tick(at("2026-11-01T03:01"))["started"] == 1
    assert broken.fires.count() == 1
