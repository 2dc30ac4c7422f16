"""Prometheus metrics: `/metrics` from the database for a token's bearer, and a worker's own on its port."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import launched
from tests.workers import start_worker, worker_env
from training import metrics, services, states, worker

pytestmark = pytest.mark.usefixtures("workflows")

TOKEN = "scrape-me"


@pytest.fixture
def scraper(client, settings):
    settings.RAILYARD = {**settings.RAILYARD, "METRICS_TOKEN": TOKEN}
    return client


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_metrics_need_the_token_and_are_off_without_one(client, settings):
    assert client.get("/metrics").status_code == 404  # no token configured: no metrics
    settings.RAILYARD = {**settings.RAILYARD, "METRICS_TOKEN": TOKEN}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_runs_queue_and_jobs_are_counted_from_the_database(scraper, alice, fraud_request):
    queued = services.submit(alice, fraud_request)[0]
    running = services.submit(alice, fraud_request)[0]
    launched(running, running=True)
    finished = services.submit(alice, fraud_request)[0]
    launched(finished, running=True)
    states.mark_succeeded(finished, {}, {})

    seen = scrape(scraper)

    assert seen[("railyard_runs", (("status", "queued"),))] == 1
    assert seen[("railyard_runs", (("status", "running"),))] == 1
    assert seen[("railyard_runs", (("status", "succeeded"),))] == 1
    assert seen[("railyard_runs", (("status", "failed"),))] == 0
    assert seen[("railyard_queue_depth", ())] == 1
    assert seen[("railyard_jobs_in_flight", (("executor", "local"),))] == 2
    assert seen[("railyard_launch_latency_seconds_count", ())] == 2  # the two launched runs
    assert seen[("railyard_launch_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert seen[("railyard_run_duration_seconds_count", ())] == 1
    assert seen[("railyard_run_duration_seconds_bucket", (("le", "10.0"),))] == 1  # it took no time at all
    assert seen[("railyard_retries_total", (("cause", "oom"),))] == 0
    assert queued.status == "queued"


def test_a_retry_on_memory_is_counted(scraper, alice, fraud_request):
    run = services.submit(alice, fraud_request)[0]
    job = launched(run, running=True)
    states.retry(run, "highmem", "retried on highmem after running out of memory on cpu")
    states.end_job(job, states.JobStatus.FAILED, states.Cause.OOM, "out of memory")

    assert scrape(scraper)[("railyard_retries_total", (("cause", "oom"),))] == 1


def test_fires_late_schedules_and_webhook_deliveries_are_counted(scraper, alice, fraud_request):
    from tests.retraining import at, make_model
    from training.models import Webhook
    from training.retraining import scheduler
    from training.retraining import services as retraining

    model = make_model(alice, fraud_request)
    ticking = retraining.add_schedule(model, {"cron": "0 3 * * *"}, now=at("2026-11-01T00:00"))
    scheduler.tick(at("2026-11-01T03:00"))
    scheduler.tick(at("2026-11-02T03:00"))  # the first run is still queued: skipped
    retraining.add_schedule(model, {"cron": "0 3 * * *"}, now=at("2026-11-01T00:00"))  # never ticked since
    Webhook.objects.create(owner=alice, url="http://127.0.0.1:9/", events=["run.failed"], secret="s" * 16)
    states.mark_failed(ticking.fires.get(outcome="started").run, "bad data")

    seen = scrape(scraper)
    assert seen[("railyard_schedule_fires_total", (("kind", "scheduled"), ("outcome", "started")))] == 1
    assert seen[("railyard_schedule_fires_total", (("kind", "scheduled"), ("outcome", "skipped")))] == 1
    assert seen[("railyard_schedules_late", ())] == 2  # both: their next times passed long ago, unfired
    assert seen[("railyard_webhook_deliveries", (("status", "pending"),))] == 1


def test_a_worker_times_its_passes(alice, fraud_request):
    before = metrics.WORKER.get_sample_value("railyard_reconcile_duration_seconds_count", {"executor": "local"}) or 0
    worker.reconcile()
    after = metrics.WORKER.get_sample_value("railyard_reconcile_duration_seconds_count", {"executor": "local"})
    assert after == before + 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_worker_serves_its_own_metrics_on_its_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = start_worker(tmp_path, "--no-cluster", env=worker_env(tmp_path, RAILYARD_WORKER_METRICS_PORT=str(port)))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                if samples(text).get(("railyard_reconcile_duration_seconds_count", (("executor", "local"),))):
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=60)
