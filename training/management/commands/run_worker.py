"""The worker: a django-q2 cluster for launch and stop tasks, and the loop beside it that ticks the
scheduler (fires due schedules) and reconciles jobs with the executor."""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections
from django_q.cluster import Cluster
from prometheus_client import start_http_server

from training import leases, metrics, services, webhooks, worker
from training.conf import railyard
from training.retraining import scheduler

log = logging.getLogger("training.worker")
#: Orphaned jobs are rare; looking for them every pass would double the list calls.
SWEEP_EVERY_PASSES = 30
#: How long the task cluster may take to stop; systemd's and Kubernetes' default grace is 30 s in all.
STOP_GRACE_SECONDS = 20.0
SENTINEL_SIGNAL_SECONDS = 1.0
WEBHOOK_INTERVAL_SECONDS = 1.0


class Command(BaseCommand):
    help = "Run the worker: the task cluster plus a reconcile pass every RAILYARD_RECONCILE_INTERVAL seconds."

    def add_arguments(self, parser):
        parser.add_argument("--no-cluster", action="store_true", help="only run the reconcile loop")

    def handle(self, *args: object, no_cluster: bool = False, **options: object) -> None:
        stopping = threading.Event()
        cluster = None if no_cluster else Cluster()
        if cluster:
            cluster.start()

        def stop(signum: int, frame: object) -> None:
            log.info("worker stopping (signal %s)", signal.Signals(signum).name)
            stopping.set()

        if railyard.worker_metrics_port:
            start_http_server(railyard.worker_metrics_port, registry=metrics.WORKER)
            log.info("worker metrics on port %s", railyard.worker_metrics_port)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        sender = threading.Thread(target=send_webhooks, args=(stopping,), name="webhooks", daemon=True)
        sender.start()
        log.info("worker reconciling every %ss with the %s executor", railyard.reconcile_interval, railyard.executor)
        passes = 0
        while not stopping.is_set():
            close_old_connections()
            try:
                fired = scheduler.tick()
                if any(fired.values()):
                    log.info("scheduler: %s", fired)
            except Exception:
                log.exception("scheduler tick failed")
            try:
                counts = worker.reconcile()
                if any(counts.values()):
                    log.info("reconcile: %s", counts)
                if passes % SWEEP_EVERY_PASSES == 0:
                    if removed := worker.sweep():
                        log.info("removed jobs Railyard no longer tracks: %s", ", ".join(removed))
                    if forgotten := services.forget_expired_idempotency_keys():
                        log.info("forgot %d expired idempotency key(s)", forgotten)
                    webhooks.forget_old()
            except Exception:
                # One bad pass (a database blip) must not stop the worker; the next pass retries.
                log.exception("reconcile pass failed")
            passes += 1
            stopping.wait(railyard.reconcile_interval)
        sender.join(webhooks.SEND_TIMEOUT_SECONDS * 2)
        if cluster:
            stop_cluster(cluster)
        # The jobs it observed are free for the other replicas at once, not when its leases expire.
        leases.release_jobs(leases.process_holder())
        connections.close_all()
        log.info("worker stopped")


def send_webhooks(stopping: threading.Event) -> None:
    """Send due webhook deliveries until the worker stops; apart from the loop, so that a slow or
    failing receiver never holds up scheduling or reconciling."""
    while not stopping.is_set():
        close_old_connections()
        try:
            sent = webhooks.deliver_due()
            if any(sent.values()):
                log.info("webhooks: %s", sent)
        except Exception:
            log.exception("sending webhooks failed")
        stopping.wait(WEBHOOK_INTERVAL_SECONDS)
    connections.close_all()


def stop_cluster(cluster: Cluster, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the task cluster within `grace` seconds, however the stop signal was sent.

    When systemd or Kubernetes signal the whole process group, the cluster's sentinel dies of the
    signal at once, possibly holding the lock of the stop event: django-q's `Cluster.stop()` would
    then wait forever. A dead sentinel needs no stop; a live one gets `grace` seconds, then is killed.
    """
    # A signal sent to the group reaches the sentinel too, a moment after this process; is_alive()
    # also reaps it, so that it lingers as no zombie.
    deadline = time.monotonic() + SENTINEL_SIGNAL_SECONDS
    while cluster.sentinel.is_alive():
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    else:
        return
    stopper = threading.Thread(target=cluster.stop, daemon=True)
    stopper.start()
    stopper.join(grace)
    if stopper.is_alive():
        log.warning("the task cluster did not stop within %ss; killing it", grace)
        cluster.sentinel.kill()
        cluster.sentinel.join(5)
