"""The audit trail: who did what to whose project (memberships, tokens, promotions, cancels, admin fixes)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from training.models import AuditAction, AuditEntry, Project

#: How many entries a project's page shows.
RECENT = 50


def record(
    actor: AbstractBaseUser | str, action: AuditAction, project: Project | None, target: str, **detail: object
) -> AuditEntry:
    name = actor if isinstance(actor, str) else actor.get_username()
    return AuditEntry.objects.create(actor=name, action=action, project=project, target=target[:200], detail=detail)


def recent(project: Project) -> list[AuditEntry]:
    return list(project.audit.all()[:RECENT])
