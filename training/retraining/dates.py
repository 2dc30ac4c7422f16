"""Relative dates in a model's request, resolved from the time a retrain fires.

A date may be written `today`, `today-90d`, `today-12w` or `today-3m` (calendar months; `+` works
too). "Today" is the fire time's date in the schedule's timezone (or the submission time's, for a
retrain started by hand), so a 03:00 Europe/Dublin schedule trains on the same window on either side
of a DST change. Subtracting months keeps the day of the month, or takes the month's last day
when it has no such day (31 March less one month is 28 or 29 February).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

RELATIVE = re.compile(r"^today(?:(?P<sign>[+-])(?P<count>\d{1,5})(?P<unit>[dwm]))?$")


class BadRelativeDate(ValueError):
    """Not a relative date."""


def is_relative(value: Any) -> bool:
    """Whether `value` is written as a relative date; any other string (a category that happens to
    start with "today", a misspelt date) is left for the request's own checks to judge."""
    return isinstance(value, str) and RELATIVE.match(value) is not None


def resolve_date(expression: str, today: date) -> date:
    """The date `expression` (`today`, `today-90d`, `today-12w`, `today-3m`) names, from `today`."""
    found = RELATIVE.match(expression)
    if found is None:
        raise BadRelativeDate(
            f"{expression!r} is not a relative date: write today, or today-<n>d, today-<n>w or today-<n>m"
        )
    if found["sign"] is None:
        return today
    count = int(found["count"]) * (1 if found["sign"] == "+" else -1)
    if found["unit"] == "d":
        return today + timedelta(days=count)
    if found["unit"] == "w":
        return today + timedelta(weeks=count)
    return add_months(today, count)


def add_months(day: date, months: int) -> date:
    """`day` moved by calendar months, on the same day of the month or the month's last day."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def today_at(moment: datetime, timezone: str) -> date:
    """The date it is at `moment` (aware) in `timezone` (an IANA name)."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def resolve(request: dict, moment: datetime, timezone: str = "UTC") -> dict:
    """The request with every relative date in its `data` (date ranges, filter values) made an ISO
    date, as of `moment` in `timezone`; anything else, `train` and `custom_params` included, as it was."""
    today = today_at(moment, timezone)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if is_relative(value):
            return resolve_date(value, today).isoformat()
        return value

    if "data" not in request:
        return dict(request)
    return {**request, "data": walk(request["data"])}


def slide(request: dict) -> dict:
    """The request with its date ranges made relative to the end of its data range, so that retrains
    keep the same window lengths up to the day they run: 2025-11-01 … 2026-11-01 with the last month
    held out becomes `today-365d` … `today` with `today-31d` … `today` held out. A request without
    `data.date_range` is returned as it was."""
    data = request.get("data") or {}
    span = data.get("date_range")
    if not isinstance(span, dict) or not isinstance(span.get("end"), str) or is_relative(span["end"]):
        return dict(request)
    anchor = date.fromisoformat(span["end"])

    def relative(value: Any) -> Any:
        if not isinstance(value, str) or is_relative(value):
            return value
        days = (anchor - date.fromisoformat(value)).days
        return "today" if days == 0 else f"today{'-' if days > 0 else '+'}{abs(days)}d"

    def ranged(raw: Any) -> Any:
        return {key: relative(value) for key, value in raw.items()} if isinstance(raw, dict) else raw

    slid = {**data, "date_range": ranged(span)}
    holdout = data.get("holdout_sampling")
    if isinstance(holdout, dict) and "date_range" in holdout:
        slid["holdout_sampling"] = {**holdout, "date_range": ranged(holdout["date_range"])}
    return {**request, "data": slid}
