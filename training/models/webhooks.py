"""Webhooks and their deliveries (`training.webhooks`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from training.models.catalogue import Project


class Webhook(models.Model):
    """Where a project's events are posted (`training.webhooks`), signed with its secret; with no
    project, every project's."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
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
        return f"{self.project.name if self.project_id else 'every project'} → {self.url}"


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
