"""Who belongs to which project, in which role, and the audit trail of who did what."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from training.models.catalogue import Project


class Role(models.TextChoices):
    """A member's role in a project; each role may do what the ones before it may (`training.access`)."""

    VIEWER = "viewer"
    MEMBER = "member"
    MAINTAINER = "maintainer"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user__username"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role} of {self.project})"


class AuditAction(models.TextChoices):
    PROJECT_CREATED = "project_created", "created the project"
    MEMBER_ADDED = "member_added", "added member"
    MEMBER_CHANGED = "member_changed", "changed the role of"
    MEMBER_REMOVED = "member_removed", "removed member"
    TOKEN_CREATED = "token_created", "issued"
    TOKEN_REVOKED = "token_revoked", "revoked"
    PROMOTED = "promoted", "promoted"
    REJECTED = "rejected", "rejected"
    ROLLED_BACK = "rolled_back", "rolled back to"
    CANCELLED = "cancelled", "cancelled"
    IMAGE_SET = "image_set", "set the trainer image to"
    ADMIN_FIX = "admin_fix", "fixed in the admin"


class AuditEntry(models.Model):
    """One thing someone did that others may later ask about; never changed once written."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="audit")
    #: What was acted on, in words: `run 12`, `alice`, `token ry_AbCdEfG`.
    target = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["project", "-at"], name="audit_project_newest")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target}"
