"""How runs, workflows and artifacts look over the API (requests are validated by `contract`)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from training.models import Artifact, Delivery, Job, Run, RunEvent, Webhook, Workflow


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["old_status", "new_status", "reason", "actor", "created_at"]


class ArtifactSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["name", "attempt", "size", "sha256", "content_type", "uri", "download_url"]

    def get_download_url(self, artifact: Artifact) -> str:
        path = reverse("api-run-artifact", args=[artifact.run_id, artifact.name])
        if artifact.attempt != artifact.run.attempt:
            path += f"?attempt={artifact.attempt}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class JobSerializer(serializers.ModelSerializer):
    """One attempt of a run: the job that executed it."""

    class Meta:
        model = Job
        fields = [
            "id",
            "attempt",
            "executor",
            "compute_resource",
            "status",
            "cause",
            "message",
            "started_at",
            "finished_at",
        ]


class RunSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    workflow_name = serializers.CharField(
        source="workflow.name", allow_null=True, help_text="None for a composition, which trains no workflow."
    )
    owner = serializers.CharField(source="owner.username")
    url = serializers.SerializerMethodField()
    model = serializers.CharField(source="model.name", allow_null=True, help_text="The model it retrains, if any.")
    scheduled_time = serializers.SerializerMethodField(
        help_text="A retrain's clock, in its timezone: the fire time its relative dates resolved from."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "url",
            "status",
            "user",
            "owner",
            "project",
            "workflow_name",
            "model_description",
            "compute_resource",
            "executor",
            "attempt",
            "created_at",
            "submitted_at",
            "started_at",
            "finished_at",
            "failure_reason",
            "status_message",
            "retried_from",
            "cloned_from",
            "model",
            "scheduled_time",
            "timezone",
            "kind",
            "parent",
            "segment",
        ]
        extra_kwargs = {
            "parent": {"help_text": "The segmented request this run is part of (its generic or a segment's model)."},
            "segment": {"help_text": "A segment's run: the value of the segment column it trains on."},
        }

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_scheduled_time(self, run: Run) -> str | None:
        # ISO 8601 in the retrain's own timezone: the offset shows which side of a DST change it fell.
        return run.clock.isoformat() if run.clock else None

    def get_url(self, run: Run) -> str:
        path = reverse("api-run-detail", args=[run.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class RunDetailSerializer(RunSerializer):
    events = RunEventSerializer(many=True, read_only=True)
    jobs = JobSerializer(many=True, read_only=True, help_text="The run's attempts, oldest first.")
    artifacts = ArtifactSerializer(
        source="latest_artifacts", many=True, read_only=True, help_text="The artifacts of the current attempt."
    )
    earlier_artifacts = serializers.SerializerMethodField(help_text="What earlier attempts wrote, newest first.")
    data_compared_with = serializers.SerializerMethodField(
        help_text='What the data read was compared with ("attempt 1", "run 12"): the earlier attempt, the run '
        "retried or the run cloned; null when there was nothing to compare with."
    )
    data_changes = serializers.SerializerMethodField(
        help_text="How the data read differs from it, a line per source; empty when the same rows were read."
    )

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "request",
            "template",
            "comparison",
            "metrics",
            "data_summary",
            "events",
            "jobs",
            "artifacts",
            "earlier_artifacts",
            "data_compared_with",
            "data_changes",
            "updated_at",
        ]

    def get_data_compared_with(self, run: Run) -> str | None:
        return (run.data_summary or {}).get("data_compared_with")

    def get_data_changes(self, run: Run) -> list[str]:
        return (run.data_summary or {}).get("data_changes") or []

    @extend_schema_field(ArtifactSerializer(many=True))
    def get_earlier_artifacts(self, run: Run) -> list[dict]:
        earlier = sorted(
            (a for a in run.artifacts.all() if a.attempt != run.attempt), key=lambda a: (-a.attempt, a.name)
        )
        return ArtifactSerializer(earlier, many=True, context=self.context).data


class WorkflowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workflow
        fields = ["name", "image", "task", "description", "default_params", "parameters"]
        extra_kwargs = {"image": {"help_text": "The trainer image that holds it; empty: the installation's own."}}


class ErrorSerializer(serializers.Serializer):
    """Every error answer: what went wrong, and for refused input each bad field with its messages."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ComputeResourceSerializer(serializers.Serializer):
    name = serializers.CharField()
    default = serializers.BooleanField()
    description = serializers.CharField(required=False)
    requests = serializers.DictField(child=serializers.CharField())
    limits = serializers.DictField(child=serializers.CharField())
    node_selector = serializers.DictField(child=serializers.CharField())
    tolerations = serializers.ListField(child=serializers.DictField())
    affinity = serializers.DictField()
    next = serializers.CharField(
        required=False, help_text="The larger profile a run that ran out of memory here is retried on, once."
    )


class WebhookSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", allow_null=True, help_text="Null: every project.")
    secret = serializers.SerializerMethodField(help_text="Shown whole only in the answer that creates it.")

    class Meta:
        model = Webhook
        fields = ["id", "project", "url", "events", "failing_after", "active", "secret", "created_at"]

    def get_secret(self, webhook: Webhook) -> str:
        return webhook.secret if self.context.get("reveal_secret") else webhook.secret[:10] + "…"


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "response_code",
            "log",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "data",
        ]
