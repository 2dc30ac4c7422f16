"""Relative dates in a model's request: a pure function of the fire time and the schedule's timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from training.retraining.dates import BadRelativeDate, add_months, resolve, resolve_date, slide, today_at


@pytest.mark.parametrize(
    ("expression", "today", "expected"),
    [
        ("today", date(2026, 11, 26), date(2026, 11, 26)),
        ("today-90d", date(2026, 11, 26), date(2026, 8, 28)),
        ("today-12w", date(2026, 11, 26), date(2026, 9, 3)),
        ("today+1d", date(2026, 12, 31), date(2027, 1, 1)),
        ("today-1d", date(2026, 3, 1), date(2026, 2, 28)),
        ("today-1d", date(2024, 3, 1), date(2024, 2, 29)),  # a leap year
        ("today-3m", date(2026, 11, 26), date(2026, 8, 26)),
        ("today-1m", date(2026, 3, 31), date(2026, 2, 28)),  # the month's last day
        ("today-1m", date(2024, 3, 31), date(2024, 2, 29)),  # …in a leap year
        ("today-3m", date(2026, 5, 31), date(2026, 2, 28)),
        ("today-12m", date(2024, 2, 29), date(2023, 2, 28)),  # a year back from a leap day
        ("today-1m", date(2026, 1, 15), date(2025, 12, 15)),  # across the year
        ("today+1m", date(2026, 1, 31), date(2026, 2, 28)),
        ("today-0d", date(2026, 11, 26), date(2026, 11, 26)),
    ],
)
def test_each_relative_date_resolves_as_the_calendar_says(expression, today, expected):
    assert resolve_date(expression, today) == expected


@pytest.mark.parametrize(
    ("moment", "timezone", "expected"),
    [
        # Europe/Dublin springs forward at 01:00 UTC on 29 March 2026 and falls back at 01:00 UTC on 25 October.
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "Europe/Dublin", date(2026, 3, 29)),
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "Europe/Dublin", date(2026, 3, 28)),  # 23:30 GMT
        (datetime(2026, 8, 10, 23, 30, tzinfo=UTC), "Europe/Dublin", date(2026, 8, 11)),  # 00:30 IST
        (
            datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
            "Europe/Dublin",
            date(2026, 10, 25),
        ),  # 00:30 IST, the last night of summer time
        (datetime(2026, 10, 25, 23, 30, tzinfo=UTC), "Europe/Dublin", date(2026, 10, 25)),  # 23:30 GMT again
        (
            datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
            "America/New_York",
            date(2026, 3, 8),
        ),  # 01:30 EST, the day clocks go on
        (datetime(2026, 11, 26, 3, 0, tzinfo=UTC), "America/Los_Angeles", date(2026, 11, 25)),
        (datetime(2026, 11, 26, 23, 0, tzinfo=UTC), "Asia/Tokyo", date(2026, 11, 27)),
    ],
)
def test_today_is_the_fire_times_date_in_the_schedules_timezone(moment, timezone, expected):
    assert today_at(moment, timezone) == expected


def test_a_request_resolves_every_relative_date_of_its_data_and_nothing_else():
    template = {
        "project": "fraud",
        "data": {
            "date_range": {"start": "today-12m", "end": "today"},
            "filters": [
                {"feature_name": "created_at", "predicate": "GtEq", "feature_value": "today-3m"},
                {"feature_name": "country", "predicate": "IsIn", "feature_value": ["today", "todays_special"]},
                {"feature_name": "day", "predicate": "Lt", "feature_value": "2026-01-01"},
            ],
            "holdout_sampling": {
                "sampling_function": "DATE_RANGE",
                "date_range": {"start": "today-1m", "end": "today"},
            },
        },
        "train": {"custom_params": {"note": "today-1d"}},
    }

    resolved = resolve(template, datetime(2026, 3, 31, 2, 0, tzinfo=UTC), "Europe/Dublin")

    assert resolved["data"]["date_range"] == {"start": "2025-03-31", "end": "2026-03-31"}
    assert resolved["data"]["holdout_sampling"]["date_range"] == {"start": "2026-02-28", "end": "2026-03-31"}
    assert [f["feature_value"] for f in resolved["data"]["filters"]] == [
        "2025-12-31",
        ["2026-03-31", "todays_special"],  # a category that merely starts like "today" is left alone
        "2026-01-01",
    ]
    assert resolved["train"] == template["train"]  # the workflow's parameters are never rewritten
    assert template["data"]["date_range"] == {"start": "today-12m", "end": "today"}  # the template is kept


@pytest.mark.parametrize("expression", ["today-3y", "today-", "today - 3d", "yesterday", "today-1.5d"])
def test_what_is_not_a_relative_date_is_refused_in_words(expression):
    with pytest.raises(BadRelativeDate, match=r"is not a relative date: write today, or today-<n>d"):
        resolve_date(expression, date(2026, 1, 1))


def test_months_add_across_years_both_ways():
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)


@pytest.mark.parametrize(
    ("span", "held", "expected_span", "expected_held"),
    [
        (("2025-11-01", "2026-11-01"), ("2026-10-01", "2026-11-01"), ("today-365d", "today"), ("today-31d", "today")),
        (("2024-03-01", "2024-03-31"), ("2024-03-24", "2024-03-30"), ("today-30d", "today"), ("today-7d", "today-1d")),
        (("today-90d", "today"), ("today-7d", "today"), ("today-90d", "today"), ("today-7d", "today")),
    ],
)
def test_a_fixed_window_slides_to_end_today_with_the_same_lengths(span, held, expected_span, expected_held):
    request = {
        "data": {
            "date_range": dict(zip(("start", "end"), span, strict=True)),
            "holdout_sampling": {
                "sampling_function": "DATE_RANGE",
                "date_range": dict(zip(("start", "end"), held, strict=True)),
            },
        },
        "train": {"label": "y"},
    }
    slid = slide(request)
    assert tuple(slid["data"]["date_range"].values()) == expected_span
    assert tuple(slid["data"]["holdout_sampling"]["date_range"].values()) == expected_held
    assert slid["train"] == request["train"]
    # Resolved on the original end day, the slid request is the original one.
    if span[1] != "today":
        end = datetime.fromisoformat(span[1]).replace(hour=12, tzinfo=UTC)
        assert resolve(slid, end)["data"] == request["data"]


def test_a_request_without_a_date_range_does_not_slide():
    request = {"data": {"holdout_sampling": {"sampling_function": "RANDOM"}}}
    assert slide(request) == request
