"""When a schedule fires: its cron expression read by croniter, in the schedule's own timezone.

- Wall time is kept across DST changes: a daily 03:00 Europe/Dublin schedule fires at 03:00 GMT in
  winter and 03:00 IST in summer.
- A time the spring-forward day skips (01:30 on 29 March in Dublin) fires at the first moment after
  the gap (02:00 IST), as croniter does.
- A time the fall-back day repeats (01:30 on 25 October) fires once, at its first occurrence:
  croniter yields both, and a daily retrain must not run twice that day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

#: The longest cron expression stored.
MAX_LENGTH = 200


class BadSchedule(ValueError):
    """A cron expression or timezone that cannot schedule anything; the message says which."""


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"{timezone!r} is not an IANA timezone (e.g. Europe/Dublin, America/New_York, UTC)") from None


def check(cron: str, timezone: str) -> None:
    """BadSchedule naming what is wrong, or nothing."""
    zone(timezone)
    fields = cron.split() if isinstance(cron, str) and len(cron) <= MAX_LENGTH else []
    macro = len(fields) == 1 and fields[0].startswith("@")
    if not (len(fields) == 5 or macro) or not croniter.is_valid(cron):
        raise BadSchedule(
            f"{cron!r} is not a cron expression: five fields (minute hour day-of-month month day-of-week), "
            "or @hourly, @daily, @weekly, @monthly, @yearly"
        )


def _wall_minute(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None, second=0, microsecond=0)


def fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The times the schedule fires strictly after `after` (aware), in order, in its timezone; each
    local wall time at most once (and not again if `after` is a fire time of that wall time)."""
    check(cron, timezone)
    local = after.astimezone(zone(timezone))
    times = croniter(cron, local)
    previous = _wall_minute(local)
    while True:
        fire = times.get_next(datetime)
        if _wall_minute(fire) == previous:
            continue  # the repeated hour of a fall-back day: the first occurrence fired already
        previous = _wall_minute(fire)
        yield fire


def latest_fire_time(cron: str, timezone: str, at: datetime) -> datetime:
    """The most recent time the schedule fires at or before `at` (aware), in its timezone."""
    check(cron, timezone)
    # croniter's get_prev is strict; cron times are whole minutes, so a second later includes `at`.
    return croniter(cron, (at + timedelta(seconds=1)).astimezone(zone(timezone))).get_prev(datetime)


def times_between(cron: str, timezone: str, start: datetime, end: datetime, most: int) -> list[datetime]:
    """The fire times from `start` to `end` (both included), at most `most` of them (BadSchedule past that)."""
    found = []
    for fire in fire_times(cron, timezone, start - timedelta(seconds=1)):
        if fire > end:
            return found
        if len(found) == most:
            raise BadSchedule(f"More than {most} fire times lie in that range; ask for a shorter one.")
        found.append(fire)
    return found


def next_fire_times(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    fires = fire_times(cron, timezone, after)
    return [next(fires) for _ in range(count)]
