"""Who may see what: the one seam every query of runs, jobs, artifacts, logs, models and webhooks goes through.

The API, the pages, artifact downloads, the comparison and the admin ask here; nothing else
decides visibility. Today every signed-in user sees everything (the staff-only admin included);
projects with members will narrow these querysets, and nothing outside this module will change.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from training.models import Artifact, Job, JobQuerySet, Model, Run, RunQuerySet, Webhook


def runs_for(user: AbstractBaseUser | AnonymousUser) -> RunQuerySet:
    """The runs `user` may see (their logs and artifacts go with them)."""
    if not user.is_authenticated:
        return Run.objects.none()
    return Run.objects.all()


def jobs_for(user: AbstractBaseUser | AnonymousUser) -> JobQuerySet:
    """The jobs `user` may see: those carrying a run they may see."""
    return Job.objects.filter(memberships__run__in=runs_for(user)).distinct()


def artifacts_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Artifact]:
    """The artifacts `user` may download: those of runs they may see."""
    return Artifact.objects.filter(run__in=runs_for(user))


def models_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Model]:
    """The models `user` may see and retrain (their schedules go with them)."""
    if not user.is_authenticated:
        return Model.objects.none()
    return Model.objects.all()


def webhooks_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Webhook]:
    """The webhooks `user` may see, add and remove (their deliveries go with them)."""
    if not user.is_authenticated:
        return Webhook.objects.none()
    return Webhook.objects.all()
