"""Railyard's metrics for Prometheus (`prometheus-client`): every metric's name and meaning, here.

- What the database knows is read when Prometheus scrapes (`DatabaseCollector`), so every web
  process and replica answers alike and nothing is lost to a restart: runs by status, the queue's
  depth, jobs in flight, launch latency and run duration histograms (over all runs), retries.
  Served at `/metrics` by the web app to a bearer of `RAILYARD_METRICS_TOKEN`.
- What only a worker sees lives in that worker process (`WORKER`): how long its reconcile passes
  take and the executor API errors it met, by cause. `run_worker` serves them on
  `RAILYARD_WORKER_METRICS_PORT`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from railyard_trainer.vocabulary import Cause, JobStatus, RunStatus

#: Seconds from queued to launched.
LAUNCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Seconds from started to finished.
DURATION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)

WORKER = CollectorRegistry()
RECONCILE_SECONDS = Histogram(
    "railyard_reconcile_duration_seconds",
    "How long one reconcile pass took (dispatch, observe, finish).",
    ["executor"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=WORKER,
)
EXECUTOR_API_ERRORS = Counter(
    "railyard_executor_api_errors",
    "Failed calls to an executor's backend, by cause (an HTTP status, timeout, connection).",
    ["executor", "cause"],
    registry=WORKER,
)


def _histogram(name: str, documentation: str, since: str, until: str, buckets: tuple) -> HistogramMetricFamily:
    from training.models import Run

    elapsed = ExpressionWrapper(F(until) - F(since), output_field=DurationField())
    runs = Run.objects.filter(**{f"{since}__isnull": False, f"{until}__isnull": False}).annotate(elapsed=elapsed)
    counts = runs.aggregate(
        total=Count("id"),
        seconds=Sum("elapsed"),
        **{f"le_{i}": Count("id", filter=Q(elapsed__lte=timedelta(seconds=b))) for i, b in enumerate(buckets)},
    )
    cumulative = [(str(float(b)), counts[f"le_{i}"]) for i, b in enumerate(buckets)]
    total_seconds = counts["seconds"].total_seconds() if counts["seconds"] else 0.0
    family = HistogramMetricFamily(name, documentation)
    family.add_metric([], [*cumulative, ("+Inf", counts["total"])], total_seconds)
    return family


class DatabaseCollector(Collector):
    """Metrics read from the database at each scrape (a few aggregate queries)."""

    def collect(self) -> Iterator[Metric]:
        from training.models import Job, Run

        by_status = dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))
        runs = GaugeMetricFamily("railyard_runs", "Runs by status.", labels=["status"])
        for status in [status.value for status in RunStatus]:
            runs.add_metric([status], by_status.get(status, 0))
        yield runs
        yield GaugeMetricFamily(
            "railyard_queue_depth", "Runs waiting to be launched.", value=by_status.get(RunStatus.QUEUED, 0)
        )
        in_flight = GaugeMetricFamily("railyard_jobs_in_flight", "Jobs launched and not ended.", labels=["executor"])
        for executor, n in Job.objects.in_flight().order_by().values_list("executor").annotate(n=Count("id")):
            in_flight.add_metric([executor], n)
        yield in_flight
        yield _histogram(
            "railyard_launch_latency_seconds",
            "From a run's submission to its job's launch.",
            "created_at",
            "submitted_at",
            LAUNCH_BUCKETS,
        )
        yield _histogram(
            "railyard_run_duration_seconds",
            "From a run's trainer starting to the run ending.",
            "started_at",
            "finished_at",
            DURATION_BUCKETS,
        )
        retries = CounterMetricFamily(
            "railyard_retries", "Runs sent back to the queue by a smart retry.", labels=["cause"]
        )
        # A job that ran out of memory while its run went on to a later attempt was retried.
        retried = Job.objects.filter(
            status=JobStatus.FAILED, cause=Cause.OOM, memberships__run__attempt__gt=F("attempt")
        )
        retries.add_metric([Cause.OOM.value], retried.count())
        yield retries
        yield from self.retraining()

    def retraining(self) -> Iterator[Metric]:
        from django.utils import timezone

        from training.models import Delivery, Fire, Schedule
        from training.retraining.scheduler import ON_TIME

        fires = CounterMetricFamily("railyard_schedule_fires", "Fires of schedules.", labels=["kind", "outcome"])
        for kind, outcome, n in Fire.objects.order_by().values_list("kind", "outcome").annotate(n=Count("id")):
            fires.add_metric([kind, outcome], n)
        yield fires
        late = Schedule.objects.filter(paused=False, next_fire_at__lt=timezone.now() - ON_TIME).count()
        yield GaugeMetricFamily(
            "railyard_schedules_late", "Running schedules whose time passed unfired (is a worker ticking?).", value=late
        )
        deliveries = GaugeMetricFamily(
            "railyard_webhook_deliveries", "Webhook deliveries by status.", labels=["status"]
        )
        for status, n in Delivery.objects.order_by().values_list("status").annotate(n=Count("id")):
            deliveries.add_metric([status], n)
        yield deliveries


REGISTRY = CollectorRegistry()
REGISTRY.register(DatabaseCollector())
