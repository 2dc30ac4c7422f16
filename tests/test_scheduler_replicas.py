"""Replicas racing, as real processes on PostgreSQL: each scheduled time fires once, backfills keep to
their parallelism, and each webhook delivery is sent once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tests.retraining import at, make_model
from tests.workers import worker_env
from training import webhooks
from training.models import Delivery, Fire, Run, Webhook
from training.retraining import services

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="racing replicas need PostgreSQL's row locks"),
]
SCHEDULES = 120
AT_ONCE = Path(__file__).with_name("at_once.py")


def race(tmp_path: Path, target: str, *args: str, replicas: int = 2) -> list:
    """Call `target` in `replicas` processes released together; their answers."""
    go = tmp_path / f"go-{target.replace(':', '-')}"
    processes = [
        subprocess.Popen(
            [sys.executable, str(AT_ONCE), str(go), target, *args],
            cwd=settings.BASE_DIR,
            env=worker_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(replicas)
    ]
    go.touch()
    answers = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0] * replicas, answers
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in answers]


def test_two_schedulers_racing_fire_each_schedule_once(alice, workflows, fraud_request, tmp_path):
    model = make_model(alice, fraud_request)
    for _ in range(SCHEDULES):
        services.add_schedule(model, {"cron": "0 3 * * *", "concurrency": "allow"}, now=at("2026-11-01T12:00"))

    answers = race(tmp_path, "training.retraining.scheduler:tick", at("2026-11-02T03:00:30").isoformat())

    assert sum(answer["started"] for answer in answers) == SCHEDULES
    assert Fire.objects.count() == SCHEDULES
    assert not Fire.objects.values("schedule").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Run.objects.filter(model=model).count() == SCHEDULES
    assert set(Fire.objects.values_list("scheduled_time", flat=True)) == {at("2026-11-02T03:00")}


def test_two_schedulers_feeding_a_backfill_keep_to_its_parallelism(alice, workflows, fraud_request, tmp_path):
    model = make_model(alice, fraud_request)
    schedule = services.add_schedule(model, {"cron": "0 3 * * *", "paused": True}, now=at("2026-11-20T00:00"))
    backfill, times, _ = services.backfill(
        schedule, {"start": "2026-09-01", "end": "2026-09-30", "parallelism": 3}, "alice"
    )
    assert len(times) == 30
    for _ in range(3):
        answers = race(tmp_path, "training.retraining.scheduler:feed_backfills", replicas=3)
        active = Run.objects.filter(fire__backfill=backfill, status="queued")
        assert active.count() == 3, answers  # three replicas at once, and never more than the parallelism
        assert sum(answers) == 3
        active.update(status="succeeded")
    assert Run.objects.filter(fire__backfill=backfill).count() == 9


class Counting(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self):
        Counting.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["id"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_two_senders_racing_send_each_delivery_once(alice, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Counting.received = []
    try:
        hook = Webhook.objects.create(
            owner=alice, url=f"http://127.0.0.1:{server.server_port}/", events=["run.failed"], secret="s" * 16
        )
        Delivery.objects.bulk_create(
            [
                Delivery(webhook=hook, event="run.failed", data={"n": n}, next_attempt_at=timezone.now())
                for n in range(150)
            ]
        )
        answers = race(tmp_path, "training.webhooks:deliver_due", replicas=3)
        while Delivery.objects.filter(status="pending").exists():  # what the three left (50 each at most)
            webhooks.deliver_due()
    finally:
        server.shutdown()
    assert sum(answer["delivered"] for answer in answers) == 150
    assert sorted(Counting.received) == sorted(f"evt_{pk}" for pk in Delivery.objects.values_list("pk", flat=True))
    assert len(set(Counting.received)) == 150
