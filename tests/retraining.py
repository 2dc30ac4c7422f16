"""Helpers for tests of models and schedules: a model whose request has a sliding window."""

from __future__ import annotations

import copy
from datetime import datetime
from zoneinfo import ZoneInfo

from training.models import Model, Run
from training.retraining import services

DUBLIN = ZoneInfo("Europe/Dublin")


def sliding(request: dict) -> dict:
    """The request with a year of training data and the last month held out, both ending today."""
    template = copy.deepcopy(request)
    template["data"]["date_range"] = {"start": "today-12m", "end": "today"}
    template["data"]["holdout_sampling"]["date_range"] = {"start": "today-1m", "end": "today"}
    return template


def make_model(owner, request: dict, name: str = "fraud-daily", **fields: object) -> Model:
    return services.create_model(owner, {"name": name, "project": "fraud", "request": sliding(request), **fields})


def at(text: str, tz: ZoneInfo = DUBLIN) -> datetime:
    """A local wall time, aware."""
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def finish(runs) -> None:
    """End runs as if they had trained (the scheduler only looks at whether they are active)."""
    Run.objects.filter(pk__in=[run.pk for run in runs]).update(status="succeeded")
