"""Railyard's records: projects, the workflow catalogue, runs, their events and artifacts, API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from training.states import ACTIVE, RunStatus


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
    is_available = models.BooleanField(default=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        return self.filter(status__in=ACTIVE)

    def with_related(self) -> RunQuerySet:
        return self.select_related("project", "workflow", "owner")


class Run(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    user = models.CharField(max_length=150, help_text="The request's `user`, as sent.")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="runs")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    model_description = models.TextField(blank=True)
    compute_resource = models.CharField(max_length=64)
    request = models.JSONField(help_text="The request as sent.")
    spec = models.JSONField(default=dict, help_text="The request resolved for the trainer.")

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    executor = models.CharField(max_length=32)
    job_handle = models.JSONField(default=dict, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    failure_reason = models.TextField(blank=True)
    # What the executor says while the run waits or trains (an unschedulable pod, say).
    status_message = models.CharField(max_length=1000, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    data_summary = models.JSONField(default=dict, blank=True)
    artifact_uri = models.CharField(max_length=1024)
    retried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="run_newest"),
            models.Index(fields=["status", "executor"], name="run_status_executor"),
            models.Index(fields=["project", "-created_at"], name="run_project_newest"),
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
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


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


class RunEvent(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=16, choices=RunStatus.choices, blank=True)
    new_status = models.CharField(max_length=16, choices=RunStatus.choices)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.old_status or '∅'} → {self.new_status} ({self.actor})"


class Artifact(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=255)
    uri = models.CharField(max_length=2048)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=128)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="artifact_name_per_run")]

    def __str__(self) -> str:
        return self.name


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
