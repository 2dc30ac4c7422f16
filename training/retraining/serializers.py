"""How models, schedules, fires and champion moves look over the API; times in each schedule's timezone."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from railyard_trainer.vocabulary import higher_is_better
from training.models import Fire, Model, Promotion, Run, Schedule
from training.retraining import champions, services


def _absolute(context: dict, path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class FireSerializer(serializers.ModelSerializer):
    scheduled_time = serializers.SerializerMethodField(help_text="In the schedule's timezone.")
    timezone = serializers.CharField(source="schedule.timezone")

    class Meta:
        model = Fire
        fields = ["id", "schedule", "scheduled_time", "timezone", "kind", "outcome", "reason", "run", "actor"]

    @extend_schema_field(serializers.DateTimeField())
    def get_scheduled_time(self, fire: Fire) -> str:
        return fire.local_time.isoformat()


class ScheduleSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    next_fire_times = serializers.SerializerMethodField(help_text="The next five, in the schedule's timezone.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = [
            "id",
            "url",
            "model",
            "cron",
            "timezone",
            "concurrency",
            "catchup",
            "paused",
            "next_fire_times",
            "created_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_fire_times(self, schedule: Schedule) -> list[str]:
        return [moment.isoformat() for moment in services.upcoming(schedule)]

    def get_url(self, schedule: Schedule) -> str:
        return _absolute(self.context, reverse("api-schedule-detail", args=[schedule.pk]))


class PromotionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Promotion
        fields = [
            "move",
            "run",
            "previous_champion",
            "metric",
            "champion_score",
            "challenger_score",
            "actor",
            "reason",
            "created_at",
        ]


class RetrainSerializer(serializers.ModelSerializer):
    """A run of a model, briefly: for the model's summary and history."""

    score = serializers.SerializerMethodField(help_text="Its holdout score on the model's metric.")
    scheduled_time = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "status", "created_at", "finished_at", "scheduled_time", "timezone", "score"]

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_score(self, run: Run) -> float | None:
        return champions.score(run, run.model.metric) if run.model else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_scheduled_time(self, run: Run) -> str | None:
        return run.clock.isoformat() if run.clock else None


class ModelSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    owner = serializers.CharField(source="owner.username")
    url = serializers.SerializerMethodField()
    higher_is_better = serializers.SerializerMethodField()
    champion = serializers.PrimaryKeyRelatedField(read_only=True, help_text="The champion's run id, or null.")
    latest_run = serializers.SerializerMethodField()
    next_fire_time = serializers.SerializerMethodField(help_text="The soonest of its running schedules' next times.")

    class Meta:
        model = Model
        fields = [
            "id",
            "name",
            "url",
            "project",
            "owner",
            "metric",
            "higher_is_better",
            "promotion",
            "champion",
            "latest_run",
            "next_fire_time",
            "created_at",
        ]

    def get_url(self, model: Model) -> str:
        return _absolute(self.context, reverse("api-model-detail", args=[model.name]))

    def get_higher_is_better(self, model: Model) -> bool:
        return higher_is_better(model.metric)

    @extend_schema_field(RetrainSerializer(allow_null=True))
    def get_latest_run(self, model: Model) -> dict | None:
        known = self.context.get("latest_runs")  # a list reads them for its whole page at once
        latest = (
            known.get(model.pk) if known is not None else model.runs.select_related("model").order_by("-id").first()
        )
        return RetrainSerializer(latest).data if latest else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_fire_time(self, model: Model) -> str | None:
        soonest = services.next_fire(model.schedules.all())
        return soonest.isoformat() if soonest else None


class ModelDetailSerializer(ModelSerializer):
    schedules = ScheduleSerializer(many=True, read_only=True)
    promotion_history = PromotionSerializer(source="promotions", many=True, read_only=True)
    awaiting_approval = serializers.SerializerMethodField(
        help_text="Retrains whose comparison with the champion waits for a person to promote or reject them."
    )

    class Meta(ModelSerializer.Meta):
        fields = [
            *ModelSerializer.Meta.fields,
            "request",
            "schedules",
            "awaiting_approval",
            "promotion_history",
            "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_awaiting_approval(self, model: Model) -> list[int]:
        return [run.pk for run in champions.awaiting_approval(model)]
