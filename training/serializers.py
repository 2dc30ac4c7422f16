"""How runs, workflows and artifacts look over the API (requests are validated by `contract`)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from training.models import Artifact, Run, RunEvent, Workflow


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["old_status", "new_status", "reason", "actor", "created_at"]


class ArtifactSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["name", "size", "sha256", "content_type", "uri", "download_url"]

    def get_download_url(self, artifact: Artifact) -> str:
        path = reverse("api-run-artifact", args=[artifact.run_id, artifact.name])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class RunSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    workflow_name = serializers.CharField(source="workflow.name")
    owner = serializers.CharField(source="owner.username")
    url = serializers.SerializerMethodField()

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
        ]

    def get_url(self, run: Run) -> str:
        path = reverse("api-run-detail", args=[run.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class RunDetailSerializer(RunSerializer):
    events = RunEventSerializer(many=True, read_only=True)
    artifacts = ArtifactSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "request", "metrics", "data_summary", "events", "artifacts", "updated_at"]


class WorkflowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Workflow
        fields = ["name", "task", "description", "default_params"]


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
