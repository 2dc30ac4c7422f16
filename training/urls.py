from django.contrib.auth import views as auth_views
from django.urls import path

from training import views
from training.retraining import views as models
from training.teams import views as teams
from training.throttles import SignInForm

urlpatterns = [
    path("", views.run_list, name="runs"),
    path("runs/new", views.launch, name="launch"),
    path("runs/<int:pk>", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/live", views.run_live, name="run-live"),
    path("runs/statuses", views.run_statuses, name="run-statuses"),
    path("compare", views.compare_runs, name="compare"),
    path("sources/columns", views.source_columns, name="source-columns"),
    path("workflows", views.workflow_list, name="workflows"),
    path("workflows/<slug:name>", views.workflow_detail, name="workflow-detail"),
    path("models", models.model_list, name="models"),
    path("models/<slug:name>", models.model_detail, name="model-detail"),
    path("models/<slug:name>/retrain", models.retrain_now, name="model-retrain"),
    path("models/<slug:name>/schedules", models.add_schedule, name="model-add-schedule"),
    path("runs/<int:pk>/model", models.model_from_run, name="run-make-model"),
    *(
        path(f"models/<slug:name>/{action}", models.champion_action, {"action": action}, name=f"model-{action}")
        for action in ("promote", "reject", "rollback")
    ),
    *(
        path(f"schedules/<int:pk>/{action}", models.schedule_action, {"action": action}, name=f"schedule-{action}")
        for action in ("pause", "resume", "fire")
    ),
    path("projects", teams.project_list, name="projects"),
    path("projects/<slug:name>", teams.project_detail, name="project-detail"),
    path("projects/<slug:name>/members", teams.set_member, name="project-set-member"),
    path("projects/<slug:name>/members/<str:username>/remove", teams.remove_member, name="project-remove-member"),
    path("tokens", teams.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke", teams.revoke_token, name="token-revoke"),
    path("runs/<int:pk>/cancel", views.cancel, name="run-cancel"),
    path("runs/<int:pk>/retry", views.retry, name="run-retry"),
    path("login", auth_views.LoginView.as_view(authentication_form=SignInForm), name="login"),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("vendor/plotly.min.js", views.plotly_js, name="plotly-js"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
