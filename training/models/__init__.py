"""Railyard's records, one module per concept: the catalogue (projects, workflows), runs (with their
jobs, events, artifacts, leases and idempotency keys, and a segmented request's segments), teams
(memberships and the audit trail), API tokens, retraining (models, schedules, fires, champion moves)
and webhooks (subscriptions and deliveries)."""

from training.models.catalogue import Project, Workflow
from training.models.retraining import Backfill, Fire, Model, Promotion, Schedule
from training.models.runs import (
    Artifact,
    IdempotencyKey,
    Job,
    JobEvent,
    JobQuerySet,
    JobRun,
    Lease,
    Run,
    RunEvent,
    RunQuerySet,
    Segment,
    StatusEvent,
)
from training.models.teams import AuditAction, AuditEntry, Membership, Role
from training.models.tokens import ApiToken, hash_token
from training.models.webhooks import Delivery, Webhook

__all__ = [
    "ApiToken",
    "Artifact",
    "AuditAction",
    "AuditEntry",
    "Backfill",
    "Delivery",
    "Fire",
    "IdempotencyKey",
    "Job",
    "JobEvent",
    "JobQuerySet",
    "JobRun",
    "Lease",
    "Membership",
    "Model",
    "Project",
    "Promotion",
    "Role",
    "Run",
    "RunEvent",
    "RunQuerySet",
    "Schedule",
    "Segment",
    "StatusEvent",
    "Webhook",
    "Workflow",
    "hash_token",
]
