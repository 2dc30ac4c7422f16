"""Two scheduler replicas ticking at the same moment, as real processes on PostgreSQL: each time fires once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count

from tests.retraining import at, make_model
from tests.workers import worker_env
from training.models import Fire, Run
from training.retraining import services

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="racing replicas need PostgreSQL's row locks"),
]
SCHEDULES = 120
TICK = Path(__file__).with_name("scheduler_tick.py")


def test_two_schedulers_racing_fire_each_schedule_once(alice, workflows, fraud_request, tmp_path):
    model = make_model(alice, fraud_request)
    for _ in range(SCHEDULES):
        services.add_schedule(model, {"cron": "0 3 * * *", "concurrency": "allow"}, now=at("2026-11-01T12:00"))
    go = tmp_path / "go"
    moment = at("2026-11-02T03:00:30").isoformat()
    replicas = [
        subprocess.Popen(
            [sys.executable, str(TICK), str(go), moment],
            cwd=settings.BASE_DIR,
            env=worker_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    answers = [replica.communicate(timeout=600) for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0], answers

    started = [json.loads(out.strip().splitlines()[-1])["started"] for out, _ in answers]
    assert sum(started) == SCHEDULES
    assert Fire.objects.count() == SCHEDULES
    assert not Fire.objects.values("schedule").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Run.objects.filter(model=model).count() == SCHEDULES
    assert set(Fire.objects.values_list("scheduled_time", flat=True)) == {at("2026-11-02T03:00")}
