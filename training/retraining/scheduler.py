"""The scheduler's tick: fire every schedule whose time has come, and feed backfills.

Every worker replica ticks; each fire is claimed by a conditional update of the schedule's
`next_fire_at` and recorded as a row unique on (schedule, scheduled time), so a time fires once
however many replicas tick at that moment.

- A time fires on time when the tick sees it within ON_TIME of it.
- After downtime (a time seen later than that), `catchup` decides: `latest` fires once, for the
  most recent missed time (its run's clock is that time); `none` fires nothing, and the next time
  fires as usual. Earlier missed times never fire.
- A paused schedule is not read at all; resuming starts from the next time after the resume.
- A backfill's fires start oldest first, at most its `parallelism` with runs not yet ended.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone as clock

from railyard_trainer.vocabulary import RUN_ACTIVE, Catchup, FireKind, FireOutcome
from training.models import Backfill, Schedule
from training.retraining import cron, services

log = logging.getLogger("training.scheduler")
#: How late a tick may see a fire time and still call it on time.
ON_TIME = timedelta(minutes=5)
#: Schedules read per query of a tick (a tick reads until none is due).
BATCH = 500


def tick(now: datetime | None = None) -> dict[str, int]:
    """Fire what is due at `now`; returns counts of fires by outcome (and `missed`: times not fired)."""
    now = now or clock.now()
    counts = {"started": 0, "skipped": 0, "failed": 0, "missed": 0, "backfill": 0, "errors": 0}
    seen: set[int] = set()
    while True:
        due = list(
            Schedule.objects.filter(paused=False, next_fire_at__lte=now)
            .exclude(pk__in=seen)
            .select_related("model__project", "model__owner")
            .order_by("next_fire_at")[:BATCH]
        )
        for schedule in due:
            seen.add(schedule.pk)
            try:
                _fire_due(schedule, now, counts)
            except Exception:  # one schedule that cannot fire (a database error) must not stop the others
                log.exception("schedule %s could not fire; it stays due and is tried again next tick", schedule.pk)
                counts["errors"] += 1
        if len(due) < BATCH:
            break
    counts["backfill"] = feed_backfills()
    return counts


def _fire_due(schedule: Schedule, now: datetime, counts: dict[str, int]) -> None:
    due_from = schedule.next_fire_at
    latest = max(cron.latest_fire_time(schedule.cron, schedule.timezone, now), due_from)
    following = next(cron.fire_times(schedule.cron, schedule.timezone, latest))
    missed_before = _count_missed(schedule, due_from, latest)
    late = now - latest > ON_TIME
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=schedule.pk, paused=False, next_fire_at=due_from).update(
            next_fire_at=following, updated_at=now
        )
        if not claimed:
            return  # another replica fired it, or it was paused or changed meanwhile
        if late and schedule.catchup == Catchup.NONE:
            counts["missed"] += missed_before + 1
            log.info("schedule %s: %d time(s) missed (catchup: none)", schedule.pk, missed_before + 1)
            return
        note = f"{missed_before} earlier time(s) missed while no scheduler ran" if missed_before else ""
        record = services.fire(
            schedule,
            latest,
            FireKind.CATCHUP if late else FireKind.SCHEDULED,
            services.SCHEDULER,
            reason=note,
            notify=False,
        )
    counts["missed"] += missed_before
    if record is not None:
        counts[record.outcome] += 1


def _count_missed(schedule: Schedule, due_from: datetime, latest: datetime, most: int = 10_000) -> int:
    """How many fire times lie from `due_from` up to (not including) `latest`."""
    if latest <= due_from:
        return 0
    try:
        return len(cron.times_between(schedule.cron, schedule.timezone, due_from, latest - timedelta(seconds=1), most))
    except cron.BadSchedule:
        return most


def feed_backfills() -> int:
    """Start pending backfill fires, oldest first, while each backfill has room; returns how many started."""
    started = 0
    waiting = Backfill.objects.filter(fires__outcome=FireOutcome.PENDING).values_list("pk", flat=True).distinct()
    for backfill_id in list(waiting):
        with transaction.atomic():
            # The row lock makes replicas take turns, so that together they keep to the parallelism.
            backfill = (
                Backfill.objects.select_for_update(of=("self",))
                .select_related("schedule__model__project", "schedule__model__owner")
                .get(pk=backfill_id)
            )
            active = backfill.fires.filter(run__status__in=RUN_ACTIVE).count()
            room = backfill.parallelism - active
            if room <= 0:
                continue
            pending = backfill.fires.filter(outcome=FireOutcome.PENDING).order_by("scheduled_time")[:room]
            for record in pending:
                record.schedule = backfill.schedule
                services.start_fire(record, notify=False)
                started += 1
    return started
