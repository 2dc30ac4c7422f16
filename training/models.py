"""Railyard's records: projects, the workflow catalogue, runs and the jobs that execute them, their
events and artifacts, API tokens; models with their schedules, fires and champion moves."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.urls import reverse
from django.utils import timezone

from railyard_trainer.vocabulary import (
    BINARY,
    JOB_IN_FLIGHT,
    METRICS,
    MULTICLASS,
    PRIMARY_METRIC,
    REGRESSION,
    RUN_ACTIVE,
    Catchup,
    Cause,
    Concurrency,
    FireKind,
    FireOutcome,
    JobStatus,
    Move,
    RunStatus,
    choices,
)


class Project(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workflow(models.Model):
    """The catalogue of workflows installed in the trainer, synced by `manage.py sync_workflows`."""

    name = models.SlugField(max_length=100, unique=True)
    task = models.CharField(max_length=32)
    description = models.TextField(blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    #: What each `custom_params` key accepts (`railyard_trainer.parameters`); null: not declared.
    parameters = models.JSONField(null=True, blank=True)
    is_available = models.BooleanField(default=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        return self.filter(status__in=RUN_ACTIVE)

    def with_related(self) -> RunQuerySet:
        return self.select_related("project", "workflow", "owner", "model")

    def best_first(self) -> RunQuerySet:
        """By the primary metric of each run's task (ROC AUC, macro F1, R²; all higher-is-better),
        best first; runs without one last, newest first among equals."""
        primary = Coalesce(
            *(
                Cast(KeyTextTransform(name, "metrics"), models.FloatField())
                for name in dict.fromkeys(PRIMARY_METRIC.values())
            )
        )
        return self.annotate(primary_value=primary).order_by(models.F("primary_value").desc(nulls_last=True), "-id")

    def with_history(self) -> RunQuerySet:
        """With events, attempts (jobs, oldest first) and the artifacts of every attempt."""
        return self.with_related().prefetch_related(
            "events", "artifacts", models.Prefetch("jobs", queryset=Job.objects.order_by("attempt", "id"))
        )


class Run(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    user = models.CharField(max_length=150, help_text="The request's `user`, as sent.")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    model_description = models.TextField(blank=True)
    compute_resource = models.CharField(max_length=64)
    request = models.JSONField(help_text="The request as sent.")
    spec = models.JSONField(default=dict, help_text="The request resolved for the trainer.")

    status = models.CharField(max_length=16, choices=choices(RunStatus), default=RunStatus.QUEUED)
    executor = models.CharField(max_length=32)
    # The attempt the run is on; each attempt is one Job (see `jobs`), made when the run is dispatched.
    attempt = models.PositiveIntegerField(default=1)
    failure_reason = models.TextField(blank=True)
    # What the executor says while the run waits or trains (an unschedulable pod, say).
    status_message = models.CharField(max_length=1000, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    data_summary = models.JSONField(default=dict, blank=True)
    # Where the current attempt writes: <store>/runs/<id>/attempt-<n>.
    artifact_uri = models.CharField(max_length=1024)
    retried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones")
    #: The model this run retrains; its `template` is the model's request as it stood, and `request`
    #: that template with its relative dates resolved at `scheduled_time` in `timezone` (the run's clock).
    model = models.ForeignKey("Model", null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    template = models.JSONField(null=True, blank=True)
    scheduled_time = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    #: A retrain's comparison with its model's champion on its own holdout rows (the trainer's comparison.json).
    comparison = models.JSONField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Lists are newest first by id (ids grow with time) and filtered by what people combine;
        # description search has a trigram index on PostgreSQL (migration 0007).
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_newest"),
            models.Index(fields=["status", "executor"], name="run_status_executor"),
            models.Index(fields=["status", "-id"], name="run_status_newest"),
            models.Index(fields=["project", "-id"], name="run_project_newest_id"),
            models.Index(fields=["project", "status", "-id"], name="run_project_status_newest"),
            models.Index(fields=["workflow", "-id"], name="run_workflow_newest"),
            models.Index(fields=["user", "-id"], name="run_user_newest"),
            models.Index(fields=["model", "-id"], name="run_model_newest"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.workflow_id and self.workflow.name}, {self.status})"

    def get_absolute_url(self) -> str:
        return reverse("run-detail", args=[self.pk])

    @property
    def state(self) -> RunStatus:
        return RunStatus(self.status)

    @property
    def duration_seconds(self) -> float | None:
        """From running to finished, as the worker saw it (it includes waiting to be observed)."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def clock(self) -> datetime | None:
        """A retrain's clock (the time its relative dates resolved from), in its own timezone."""
        if self.scheduled_time is None:
            return None
        return self.scheduled_time.astimezone(ZoneInfo(self.timezone or "UTC"))

    @property
    def stage_seconds(self) -> dict[str, float]:
        """The trainer's own seconds per stage (load … evaluate), as it measured them."""
        return (self.data_summary or {}).get("stage_seconds") or {}

    @property
    def primary_metric(self) -> tuple[str, float] | None:
        """The metric that ranks runs of its task (ROC AUC, macro F1, R²) and its value, once it has one."""
        for task in (BINARY, MULTICLASS, REGRESSION):
            name = PRIMARY_METRIC[task]
            if name in (self.metrics or {}):
                return METRICS[name].display, self.metrics[name]
        return None

    def current_job(self) -> Job | None:
        """The job of the attempt the run is on, once it has been dispatched."""
        return Job.objects.filter(memberships__run=self, memberships__attempt=self.attempt).first()

    @property
    def latest_artifacts(self) -> list[Artifact]:
        """The current attempt's artifacts (earlier attempts keep theirs; see `artifacts`)."""
        return [artifact for artifact in self.artifacts.all() if artifact.attempt == self.attempt]


class JobQuerySet(models.QuerySet):
    def in_flight(self) -> JobQuerySet:
        return self.filter(status__in=JOB_IN_FLIGHT)


class Job(models.Model):
    """One execution on an executor (a local process, a Kubernetes Job) carrying one or more runs.

    Its status moves only through `training.states`; its runs' statuses follow from it there.
    """

    executor = models.CharField(max_length=32)
    attempt = models.PositiveIntegerField(default=1)
    compute_resource = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=choices(JobStatus), default=JobStatus.PENDING)
    #: Why it ended, when it did not succeed (out of memory, bad data, …); see `railyard_trainer.vocabulary.Cause`.
    cause = models.CharField(max_length=16, choices=choices(Cause), blank=True)
    #: Words for people: what the job waits for, or why it ended.
    message = models.TextField(blank=True)
    #: What the executor needs to find it again (a pid and work folder; a Kubernetes Job name and uid).
    handle = models.JSONField(default=dict, blank=True)
    lease_holder = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    runs = models.ManyToManyField(Run, through="JobRun", related_name="jobs")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["executor", "status"], name="job_executor_status")]

    def __str__(self) -> str:
        return f"job {self.pk} (attempt {self.attempt}, {self.status})"

    @property
    def state(self) -> JobStatus:
        return JobStatus(self.status)


class JobRun(models.Model):
    """A run carried by a job, as one of the run's attempts: each attempt of a run has one job."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="memberships")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="memberships")
    attempt = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "attempt"], name="one_job_per_run_attempt"),
            models.UniqueConstraint(fields=["job", "run"], name="run_once_per_job"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} attempt {self.attempt} in job {self.job_id}"


class Lease(models.Model):
    """Work one worker does at a time (dispatching for an executor); see `training.leases`."""

    name = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key`: while it lives, the same request with it returns the same run."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of the request body as sent (canonical JSON): a reuse with another body is a conflict.
    request_hash = models.CharField(max_length=64)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")]

    def __str__(self) -> str:
        return f"{self.key} → run {self.run_id}"


class StatusEvent(models.Model):
    """One transition, as `training.states` writes it beside the conditional update."""

    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.old_status or '∅'} → {self.new_status} ({self.actor})"


class RunEvent(StatusEvent):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=16, choices=choices(RunStatus), blank=True)
    new_status = models.CharField(max_length=16, choices=choices(RunStatus))


class JobEvent(StatusEvent):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=16, choices=choices(JobStatus), blank=True)
    new_status = models.CharField(max_length=16, choices=choices(JobStatus))


class Artifact(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    attempt = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=255)
    uri = models.CharField(max_length=2048)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=128)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "attempt", "name"], name="artifact_name_per_run_attempt")]

    def __str__(self) -> str:
        return self.name

    @property
    def folder_uri(self) -> str:
        """The folder of the attempt that wrote it (older runs wrote straight into `runs/<id>`)."""
        return self.uri.removesuffix("/" + self.name)


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()


class ApiToken(models.Model):
    """An API key, stored only as its sha256: the key itself is shown once, when it is issued."""

    KEY_PREFIX = "ry_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    # The key's first characters, so that people can tell their keys apart without the key.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user: models.Model, name: str = "") -> tuple[ApiToken, str]:
        """A new token for `user`; returns it with the key, which is not stored and cannot be shown again."""
        key = cls.KEY_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=key[:10], key_hash=hash_token(key))
        return token, key


class Model(models.Model):
    """A named request template, retrained by hand or on schedules (`training.retraining`).

    Its runs are its retrains; its champion is the run whose model is in use. The request's dates
    may be relative (`today-90d`), resolved on each retrain from the run's clock.
    """

    name = models.SlugField(max_length=100, unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="models")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    request = models.JSONField(help_text="The request template; its dates may be relative.")
    #: The metric that ranks its retrains (a name from the metric registry) and decides promotions.
    metric = models.CharField(max_length=64)
    #: The promotion policy, defaults filled in (`training.retraining.policy`).
    promotion = models.JSONField(default=dict)
    champion = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("model-detail", args=[self.name])


class Schedule(models.Model):
    """When a model retrains: a cron expression in an IANA timezone (`training.retraining.cron`)."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    concurrency = models.CharField(max_length=16, choices=choices(Concurrency), default=Concurrency.FORBID)
    catchup = models.CharField(max_length=16, choices=choices(Catchup), default=Catchup.LATEST)
    paused = models.BooleanField(default=False)
    #: The next cron time not yet fired; the scheduler's tick reads only schedules whose time has come.
    next_fire_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["next_fire_at"], condition=models.Q(paused=False), name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.model_id and self.model.name}: {self.cron} ({self.timezone})"


class Backfill(models.Model):
    """Fires for a schedule's past times, run at most `parallelism` at a time."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="backfills")
    start = models.DateTimeField()
    end = models.DateTimeField()
    parallelism = models.PositiveIntegerField()
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"backfill {self.pk} of schedule {self.schedule_id}"


class Fire(models.Model):
    """One time a schedule fired: unique on (schedule, scheduled time), so replicas fire it once."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fires")
    scheduled_time = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=choices(FireKind))
    outcome = models.CharField(max_length=16, choices=choices(FireOutcome))
    reason = models.TextField(blank=True)
    run = models.OneToOneField(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="fire")
    backfill = models.ForeignKey(Backfill, null=True, blank=True, on_delete=models.CASCADE, related_name="fires")
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_time", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "scheduled_time"], name="one_fire_per_schedule_time")
        ]
        indexes = [models.Index(fields=["backfill", "outcome"], name="fire_backfill_outcome")]

    def __str__(self) -> str:
        return f"{self.schedule_id} at {self.scheduled_time:%Y-%m-%d %H:%M} ({self.outcome})"

    @property
    def local_time(self) -> datetime:
        """The scheduled time in the schedule's timezone."""
        return self.scheduled_time.astimezone(ZoneInfo(self.schedule.timezone))


class Promotion(models.Model):
    """A move of a model's champion, or a challenger turned down: who, why, and both scores."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="promotions")
    move = models.CharField(max_length=16, choices=choices(Move))
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="+", help_text="The run moved to (or refused).")
    previous_champion = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    metric = models.CharField(max_length=64)
    champion_score = models.FloatField(null=True, blank=True)
    challenger_score = models.FloatField(null=True, blank=True)
    actor = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_id}: {self.move} run {self.run_id}"


class Webhook(models.Model):
    """Where a project's events are posted (`training.webhooks`), signed with its secret."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    #: The event types it takes (`training.webhooks.EVENTS`).
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=200)
    #: `model.failing` is sent when a model's last this-many runs failed.
    failing_after = models.PositiveIntegerField(default=3)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.project_id and self.project.name} → {self.url}"


class Delivery(models.Model):
    """One event for one webhook, recorded with what it reports; sent, retried and logged by the worker."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    data = models.JSONField()
    status = models.CharField(
        max_length=16, choices=[(s, s.capitalize()) for s in (PENDING, DELIVERED, FAILED)], default=PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    #: Every attempt: when, the response code (null when none came), and what went wrong.
    log = models.JSONField(default=list)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event} → webhook {self.webhook_id} ({self.status})"
