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
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


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
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise BadSchedule(f"{cron!r} is not a cron expression (five fields: minute hour day month weekday)")


def fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """The times the schedule fires strictly after `after` (aware), in order, in its timezone; each
    local wall time at most once."""
    check(cron, timezone)
    times = croniter(cron, after.astimezone(zone(timezone)))
    previous = None
    while True:
        fire = times.get_next(datetime)
        if previous is not None and fire.replace(tzinfo=None) == previous.replace(tzinfo=None):
            continue  # the repeated hour of a fall-back day: the first occurrence fired already
        previous = fire
        yield fire


def next_fire_times(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    fires = fire_times(cron, timezone, after)
    return [next(fires) for _ in range(count)]
