"""Webhooks over real HTTP: signed as Stripe signs, retried with backoff, never in training's way."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import launched
from tests.retraining import make_model
from tests.workers import start_worker
from training import services, states, webhooks
from training.models import Delivery, Run
from training.retraining import champions
from training.retraining import services as retraining

SECRET = "whsec_test_0123456789abcdef"


class Receiver:
    """An HTTP endpoint that checks each delivery's signature as a subscriber would, and answers `code`."""

    def __init__(self, code: int = 200, secret: str = SECRET):
        self.code, self.secret, self.received, self.verified = code, secret, [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(json.loads(raw))
                receiver.verified.append(verify(self.headers[webhooks.SIGNATURE_HEADER], raw, receiver.secret))
                self.send_response(receiver.code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"

    def close(self):
        self.server.shutdown()


def verify(header: str, raw: bytes, secret: str, tolerance: int = 300) -> bool:
    """A subscriber's check, written from the header's documentation: t and v1, HMAC of "<t>.<body>"."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < tolerance


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def subscribe(api, url: str, events: list[str], **extra) -> dict:
    body = {"project": "fraud", "url": url, "events": events, "secret": SECRET, **extra}
    response = api.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def succeed(run: Run) -> None:
    launched(run, running=True)
    run.refresh_from_db()
    assert states.mark_succeeded(run, metrics={"roc_auc": 0.9}, data_summary={})


def fail(run: Run) -> None:
    run.refresh_from_db()
    assert states.mark_failed(run, "bad data: the label has one class")


@pytest.mark.django_db
def test_a_finished_run_is_posted_signed_and_the_receiver_verifies_it(api, alice, workflows, fraud_request, receiver):
    hook = subscribe(api, receiver.url, ["run.succeeded", "run.failed"])
    assert hook["secret"] == SECRET  # shown in the answer that creates it…
    assert api.get("/api/v1/webhooks").json()[0]["secret"] == SECRET[:10] + "…"  # …and not after
    run, _ = services.submit(alice, fraud_request)
    succeed(run)
    other, _ = services.submit(alice, {**fraud_request, "project": "payments"})  # not this webhook's project
    succeed(other)

    assert webhooks.deliver_due() == {"delivered": 1, "retrying": 0, "failed": 0}
    assert receiver.verified == [True]
    event = receiver.received[0]
    assert event["type"] == "run.succeeded"
    assert event["data"]["object"]["id"] == run.pk
    assert event["data"]["object"]["metrics"] == {"roc_auc": 0.9}
    delivery = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()[0]
    assert (delivery["status"], delivery["response_code"], delivery["attempts"]) == ("delivered", 200, 1)
    assert webhooks.deliver_due() == {"delivered": 0, "retrying": 0, "failed": 0}  # sent once


@pytest.mark.django_db
def test_a_receiver_answering_500_is_retried_with_backoff_and_each_code_logged(api, alice, workflows, fraud_request):
    failing = Receiver(code=500)
    try:
        subscribe(api, failing.url, ["run.failed"])
        run, _ = services.submit(alice, fraud_request)
        fail(run)
        delivery = Delivery.objects.get()
        moment = timezone.now()
        waits = []
        for _ in range(webhooks.MAX_ATTEMPTS):
            counts = webhooks.deliver_due(moment)
            delivery.refresh_from_db()
            waits.append(delivery.next_attempt_at - moment)
            moment = delivery.next_attempt_at
            assert sum(counts.values()) == 1
        assert [entry["response_code"] for entry in delivery.log] == [500] * webhooks.MAX_ATTEMPTS
        assert delivery.status == "failed"
        assert waits[:3] == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
        assert len(failing.received) == webhooks.MAX_ATTEMPTS
        assert all(failing.verified)
    finally:
        failing.close()


@pytest.mark.django_db
def test_a_receiver_that_cannot_be_reached_is_logged_without_a_code(api, alice, workflows, fraud_request):
    subscribe(api, "http://127.0.0.1:9/nothing-listens", ["run.failed"])
    run, _ = services.submit(alice, fraud_request)
    fail(run)
    assert webhooks.deliver_due()["retrying"] == 1
    entry = Delivery.objects.get().log[0]
    assert entry["response_code"] is None
    assert "could not be sent" in entry["error"]


@pytest.mark.django_db
def test_a_model_whose_last_three_runs_failed_is_told_once(api, alice, workflows, fraud_request, receiver):
    subscribe(api, receiver.url, ["model.failing"], failing_after=3)
    model = make_model(alice, fraud_request)
    for _ in range(4):
        fail(retraining.retrain(model, alice, timezone.now()))
    webhooks.deliver_due()
    assert [event["type"] for event in receiver.received] == ["model.failing"]
    assert receiver.received[0]["data"]["object"]["failed_runs_in_a_row"] == 3
    assert receiver.received[0]["data"]["object"]["model"] == "fraud-daily"


@pytest.mark.django_db
def test_promotions_and_rejections_are_posted(api, alice, workflows, fraud_request, receiver):
    subscribe(api, receiver.url, ["model.promoted", "model.rejected"])
    model = make_model(alice, fraud_request)
    runs = [retraining.retrain(model, alice, timezone.now()) for _ in range(3)]
    for run in runs:
        succeed(run)  # the first becomes champion
    model.refresh_from_db()
    champions.promote(model, runs[1], "alice", "better on last week")
    champions.reject(model, runs[2], "alice", "holiday traffic")
    webhooks.deliver_due()
    told = [(e["type"], e["data"]["object"]["run"], e["data"]["object"]["actor"]) for e in receiver.received]
    assert sorted(told) == sorted(
        [
            ("model.promoted", runs[0].pk, "railyard"),
            ("model.promoted", runs[1].pk, "alice"),
            ("model.rejected", runs[2].pk, "alice"),
        ]
    )
    assert all(receiver.verified)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"events": ["run.exploded"]}, "events"),
        ({"events": []}, "events"),
        ({"secret": "short"}, "secret"),
        ({"failing_after": 0}, "failing_after"),
        ({"project": "no spaces"}, "project"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_webhook_is_refused_naming_the_field(api, change, field):
    body = {"project": "fraud", "url": "https://example.com/hooks", "events": ["run.failed"], **change}
    response = api.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.django_db(transaction=True)
def test_training_goes_on_while_a_receiver_answers_500(api, alice, workflows, fraud_request, tmp_path):
    failing = Receiver(code=500)
    process = start_worker(tmp_path)
    try:
        subscribe(api, failing.url, ["run.succeeded"])
        first, _ = services.submit(alice, fraud_request)
        second, _ = services.submit(alice, fraud_request)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = Run.objects.filter(pk__in=[first.pk, second.pk], status="succeeded").count()
            if done == 2 and len(failing.received) >= 3:
                break
            time.sleep(0.5)
        log = (tmp_path / "worker.log").read_text()
        assert Run.objects.filter(pk__in=[first.pk, second.pk], status="succeeded").count() == 2, log
        assert len(failing.received) >= 3, log  # both told once, and retried
        assert all(failing.verified)
        assert all(entry["response_code"] == 500 for d in Delivery.objects.all() for entry in d.log)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        failing.close()
    assert code == 0


@pytest.mark.django_db
def test_a_webhook_of_no_project_hears_every_project(api, alice, charlie, workflows, fraud_request, receiver):
    operator = APIClient()
    operator.force_authenticate(charlie)
    refused = api.post("/api/v1/webhooks", {"url": receiver.url, "events": ["run.failed"]}, format="json")
    assert "every project is an operator's" in refused.json()["errors"]["project"][0]
    response = operator.post("/api/v1/webhooks", {"url": receiver.url, "events": ["run.failed"]}, format="json")
    assert response.status_code == 201
    assert response.json()["project"] is None
    assert response.json()["secret"].startswith("whsec_")
    receiver.secret = response.json()["secret"]  # made for it, and shown this once
    for project in ("fraud", "payments"):
        run, _ = services.submit(alice, {**fraud_request, "project": project})
        fail(run)
    webhooks.deliver_due()
    assert sorted(event["data"]["object"]["project"] for event in receiver.received) == ["fraud", "payments"]
    assert receiver.verified == [True, True]


def test_a_signature_fails_with_another_secret_or_a_changed_body():
    body = b'{"type":"run.succeeded"}'
    header = webhooks.sign(SECRET, body, int(time.time()))
    assert verify(header, body, SECRET)
    assert not verify(header, body, SECRET + "x")
    assert not verify(header, body.replace(b"succeeded", b"failed"), SECRET)
    assert not verify(webhooks.sign(SECRET, body, int(time.time()) - 3600), body, SECRET)  # too old
