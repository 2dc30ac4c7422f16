"""When a schedule fires: croniter in the schedule's timezone, across DST changes, each wall time once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from training.retraining.cron import BadSchedule, check, next_fire_times

DUBLIN = "Europe/Dublin"


def local(fires: list[datetime]) -> list[str]:
    return [fire.isoformat() for fire in fires]


def test_a_daily_0300_schedule_fires_once_a_day_at_local_0300_across_the_spring_change():
    fires = next_fire_times("0 3 * * *", DUBLIN, datetime(2026, 3, 27, 12, tzinfo=UTC), 4)

    assert local(fires) == [
        "2026-03-28T03:00:00+00:00",
        "2026-03-29T03:00:00+01:00",  # summer time began at 01:00 that morning
        "2026-03-30T03:00:00+01:00",
        "2026-03-31T03:00:00+01:00",
    ]


def test_a_daily_0300_schedule_fires_once_a_day_at_local_0300_across_the_autumn_change():
    fires = next_fire_times("0 3 * * *", DUBLIN, datetime(2026, 10, 23, 12, tzinfo=UTC), 4)

    assert local(fires) == [
        "2026-10-24T03:00:00+01:00",
        "2026-10-25T03:00:00+00:00",  # winter time from 02:00 that morning
        "2026-10-26T03:00:00+00:00",
        "2026-10-27T03:00:00+00:00",
    ]


def test_a_time_in_the_repeated_hour_fires_once_at_its_first_occurrence():
    fires = next_fire_times("30 1 * * *", DUBLIN, datetime(2026, 10, 24, 12, tzinfo=UTC), 3)

    assert local(fires) == ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00", "2026-10-27T01:30:00+00:00"]


def test_a_time_the_spring_change_skips_fires_just_after_the_gap():
    fires = next_fire_times("30 1 * * *", DUBLIN, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)

    assert local(fires) == ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]


def test_an_hourly_schedule_has_one_fewer_fire_on_the_spring_day_and_no_duplicate_on_the_autumn_day():
    spring = next_fire_times("0 * * * *", DUBLIN, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), 24)
    autumn = next_fire_times("15 * * * *", DUBLIN, datetime(2026, 10, 24, 23, 0, tzinfo=UTC), 25)

    assert [f.date().isoformat() for f in spring].count("2026-03-29") == 23
    assert len({f.isoformat() for f in autumn}) == 25
    assert len({f.replace(tzinfo=None) for f in autumn}) == 25  # each wall time once


@pytest.mark.parametrize(
    ("cron", "timezone", "message"),
    [
        ("61 * * * *", "UTC", "'61 * * * *' is not a cron expression"),
        ("every day", "UTC", "'every day' is not a cron expression"),
        ("0 3 * * *", "Europe/Atlantis", "'Europe/Atlantis' is not an IANA timezone"),
    ],
)
def test_a_bad_schedule_is_refused_in_words(cron, timezone, message):
    with pytest.raises(BadSchedule, match=re.escape(message)):
        check(cron, timezone)
