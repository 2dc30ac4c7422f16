"""Models retrained on schedules: the model, its schedules and their fires and backfills, and every
move of its champion (`training.retraining`)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models
from django.urls import reverse

from railyard_trainer.vocabulary import (
    Catchup,
    Concurrency,
    FireKind,
    FireOutcome,
    Move,
    choices,
)
from training.models.catalogue import Project
from training.models.runs import Run


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

    @property
    def next_fire_local(self) -> datetime:
        """The next time it fires, in its own timezone."""
        return self.next_fire_at.astimezone(ZoneInfo(self.timezone))


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
