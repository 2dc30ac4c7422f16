from django.urls import path

from training import api
from training.retraining import api as retraining
from training.segments import api as segments_api
from training.teams import api as teams

urlpatterns = [
    path("runs", api.RunList.as_view(), name="api-runs"),
    path("runs/<int:pk>", api.RunDetail.as_view(), name="api-run-detail"),
    path("runs/<int:pk>/cancel", api.CancelRun.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/retry", api.RetryRun.as_view(), name="api-run-retry"),
    path("runs/<int:pk>/logs", api.RunLogs.as_view(), name="api-run-logs"),
    path("runs/<int:pk>/segments", segments_api.RunSegments.as_view(), name="api-run-segments"),
    path("runs/<int:pk>/artifacts/<str:name>", api.RunArtifact.as_view(), name="api-run-artifact"),
    path("workflows", api.WorkflowList.as_view(), name="api-workflows"),
    path("compute-resources", api.compute_resources, name="api-compute-resources"),
    path("webhooks", api.WebhookList.as_view(), name="api-webhooks"),
    path("webhooks/<int:pk>", api.WebhookDetail.as_view(), name="api-webhook-detail"),
    path("webhooks/<int:pk>/deliveries", api.WebhookDeliveries.as_view(), name="api-webhook-deliveries"),
    path("models", retraining.ModelList.as_view(), name="api-models"),
    path("models/<slug:name>", retraining.ModelDetail.as_view(), name="api-model-detail"),
    path("models/<slug:name>/runs", retraining.ModelRuns.as_view(), name="api-model-runs"),
    path("models/<slug:name>/schedules", retraining.ModelSchedules.as_view(), name="api-model-schedules"),
    path("models/<slug:name>/promote", retraining.PromoteRun.as_view(), name="api-model-promote"),
    path("models/<slug:name>/reject", retraining.RejectRun.as_view(), name="api-model-reject"),
    path("models/<slug:name>/rollback", retraining.RollbackModel.as_view(), name="api-model-rollback"),
    path("schedules/<int:pk>", retraining.ScheduleDetail.as_view(), name="api-schedule-detail"),
    path("schedules/<int:pk>/fires", retraining.ScheduleFires.as_view(), name="api-schedule-fires"),
    path("schedules/<int:pk>/pause", retraining.PauseSchedule.as_view(), name="api-schedule-pause"),
    path("schedules/<int:pk>/resume", retraining.ResumeSchedule.as_view(), name="api-schedule-resume"),
    path("schedules/<int:pk>/fire", retraining.FireSchedule.as_view(), name="api-schedule-fire"),
    path("schedules/<int:pk>/backfill", retraining.BackfillSchedule.as_view(), name="api-schedule-backfill"),
    path("projects", teams.ProjectList.as_view(), name="api-projects"),
    path("projects/<slug:name>", teams.ProjectDetail.as_view(), name="api-project-detail"),
    path("projects/<slug:name>/image", teams.ProjectImage.as_view(), name="api-project-image"),
    path("projects/<slug:name>/members", teams.ProjectMembers.as_view(), name="api-project-members"),
    path("projects/<slug:name>/members/<str:username>", teams.ProjectMember.as_view(), name="api-project-member"),
    path("tokens", teams.TokenList.as_view(), name="api-tokens"),
    path("tokens/<int:pk>", teams.TokenDetail.as_view(), name="api-token-detail"),
]
