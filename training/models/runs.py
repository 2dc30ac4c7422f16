"""Runs and the jobs that execute them, their events and artifacts; the leases and idempotency keys
that keep several workers and repeated requests from doing anything twice."""

from __future__ import annotations

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
    Cause,
    JobStatus,
    RunKind,
    RunStatus,
    Winner,
    choices,
)
from training.models.catalogue import Project, Workflow


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
    #: None for a composition, which trains no workflow of its own.
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
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
    #: A single model, a segmented request, or one of its children (see `training.segments`).
    kind = models.CharField(max_length=16, choices=choices(RunKind), default=RunKind.SINGLE)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    #: A segment's run: the value of the segment column it trains on.
    segment = models.JSONField(null=True, blank=True)

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
            models.Index(fields=["parent", "status"], name="run_parent_status"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.workflow.name if self.workflow_id else self.kind}, {self.status})"

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


class Segment(models.Model):
    """One value of a segmented request's column: its rows, its model's run (None when too small to
    train), both models' scores on its holdout rows, and which should serve it (`segments.json`'s items)."""

    parent = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="segments")
    value = models.JSONField()
    #: The value as text, to search and sort by.
    name = models.CharField(max_length=255)
    run = models.OneToOneField(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="segment_of")
    train_rows = models.PositiveBigIntegerField()
    holdout_rows = models.PositiveBigIntegerField()
    metric = models.CharField(max_length=64)
    segment_score = models.FloatField(null=True, blank=True)
    generic_score = models.FloatField(null=True, blank=True)
    difference = models.FloatField(null=True, blank=True)
    interval = models.JSONField(null=True, blank=True)
    winner = models.CharField(max_length=16, choices=choices(Winner), default=Winner.GENERIC)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["parent", "name"], name="segment_value_once_per_request")]

    def __str__(self) -> str:
        return f"{self.name} of run {self.parent_id}"

    def item(self) -> dict:
        """As `segments.json` and the API give it."""
        return {
            "segment": self.value,
            "run": self.run_id,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "metric": self.metric,
            "segment_score": self.segment_score,
            "generic_score": self.generic_score,
            "difference": self.difference,
            "interval": self.interval,
            "winner": self.winner,
        }


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
