from django.urls import path

from training import api

urlpatterns = [
    path("runs", api.RunList.as_view(), name="api-runs"),
    path("runs/<int:pk>", api.RunDetail.as_view(), name="api-run-detail"),
    path("runs/<int:pk>/cancel", api.CancelRun.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/retry", api.RetryRun.as_view(), name="api-run-retry"),
    path("runs/<int:pk>/logs", api.RunLogs.as_view(), name="api-run-logs"),
    path("runs/<int:pk>/artifacts/<str:name>", api.RunArtifact.as_view(), name="api-run-artifact"),
    path("workflows", api.WorkflowList.as_view(), name="api-workflows"),
    path("compute-resources", api.compute_resources, name="api-compute-resources"),
]
