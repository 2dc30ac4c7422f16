"""The admin as an operator's tool: every job-state fix goes through `training.states`."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from railyard_trainer.vocabulary import RunStatus
from training import access, audit, images, services, states
from training.models import (
    ApiToken,
    Artifact,
    AuditAction,
    AuditEntry,
    Delivery,
    Fire,
    Job,
    JobEvent,
    JobRun,
    Membership,
    Model,
    Project,
    Promotion,
    Role,
    Run,
    RunEvent,
    Schedule,
    Webhook,
    Workflow,
)
from training.throttles import AdminSignInForm

admin.site.login_form = AdminSignInForm
#: A filter by project offers only the projects of the rows shown (which `access` chose), never every name.
VISIBLE_PROJECTS = ("project", admin.RelatedOnlyFieldListFilter)


class ReadOnlyInline(admin.TabularInline):
    """History and artifacts are written by the system; operators read them."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    readonly_fields = ["created_at", "old_status", "new_status", "actor", "reason"]


class ArtifactInline(ReadOnlyInline):
    model = Artifact
    readonly_fields = ["attempt", "name", "size", "sha256", "content_type", "uri"]


class AttemptInline(ReadOnlyInline):
    """A run's attempts: the job of each, with its status and why it ended."""

    model = JobRun
    verbose_name_plural = "attempts"
    fields = readonly_fields = ["attempt", "job", "job_status", "job_cause", "job_message"]

    @admin.display(description="status")
    def job_status(self, membership: JobRun) -> str:
        return membership.job.status

    @admin.display(description="cause")
    def job_cause(self, membership: JobRun) -> str:
        return membership.job.cause

    @admin.display(description="message")
    def job_message(self, membership: JobRun) -> str:
        return membership.job.message


class FailureReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, verb: str, done: int, total: int) -> None:
    level = messages.SUCCESS if done == total else messages.WARNING
    modeladmin.message_user(request, f"{verb} {done} of {total} selected run(s); the others were skipped.", level)


def _actionable(request: HttpRequest, queryset: QuerySet[Run]) -> list[Run]:
    """The selected runs the operator may act on (a staff member who is not a superuser: as a member)."""
    return list(queryset.filter(pk__in=access.runs_for(request, Role.MEMBER).values("pk")))


def _fixed(run: Run, actor: str, what: str, done: bool) -> bool:
    if done:
        audit.record(actor, AuditAction.ADMIN_FIX, run.project, f"run {run.pk}", fix=what)
    return done


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "project", "workflow", "user", "executor", "attempt", "created_at", "finished_at"]
    list_filter = [
        "status",
        VISIBLE_PROJECTS,
        ("workflow", admin.RelatedOnlyFieldListFilter),
        "executor",
        "compute_resource",
    ]
    search_fields = ["=id", "user", "model_description", "failure_reason", "owner__username"]
    list_select_related = ["project", "workflow"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline, RunEventInline, ArtifactInline]
    actions = ["cancel_runs", "mark_failed", "requeue_runs"]
    # The worker owns everything about a run's execution; operators change it through actions.
    readonly_fields = [
        "owner",
        "user",
        "project",
        "workflow",
        "compute_resource",
        "request",
        "spec",
        "status",
        "executor",
        "attempt",
        "failure_reason",
        "metrics",
        "data_summary",
        "artifact_uri",
        "retried_from",
        "created_at",
        "updated_at",
        "submitted_at",
        "started_at",
        "finished_at",
    ]
    fields = ["model_description", *readonly_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return access.runs_for(request).select_related("project", "workflow")

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        runs = _actionable(request, queryset)
        done = sum(services.cancel(run, actor=request.user.get_username()) for run in runs)
        _report(self, request, "Cancelled", done, len(runs))

    @admin.action(description="Mark selected runs failed (with a reason)")
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        form = FailureReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            runs = _actionable(request, queryset)
            actor = request.user.get_username()
            reason = f"{form.cleaned_data['reason']} (marked failed by {actor})"
            done = sum(
                _fixed(run, actor, "marked failed", states.mark_failed(run, reason, actor=actor, operator=True))
                for run in runs
                if run.status != RunStatus.FAILED
            )
            _report(self, request, "Marked failed", done, len(runs))
            return None
        return render(
            request,
            "admin/training/mark_failed.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "runs": queryset,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Requeue selected runs (a new attempt)")
    def requeue_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        runs, actor = _actionable(request, queryset), request.user.get_username()
        done = sum(_fixed(run, actor, "requeued", services.requeue(run, actor=actor)) for run in runs)
        _report(self, request, "Requeued", done, len(runs))


class JobEventInline(ReadOnlyInline):
    model = JobEvent
    readonly_fields = ["created_at", "old_status", "new_status", "actor", "reason"]


class CarriedRunInline(ReadOnlyInline):
    model = JobRun
    verbose_name_plural = "runs"
    fields = readonly_fields = ["run", "attempt"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are the worker's: operators read them here and act on their runs."""

    list_display = ["id", "status", "cause", "executor", "attempt", "compute_resource", "launched_at", "finished_at"]
    list_filter = ["status", "cause", "executor", "compute_resource"]
    search_fields = ["=id", "=memberships__run__id", "message"]
    date_hierarchy = "created_at"
    inlines = [CarriedRunInline, JobEventInline]
    fields = readonly_fields = [
        "executor",
        "attempt",
        "compute_resource",
        "status",
        "cause",
        "message",
        "handle",
        "lease_holder",
        "lease_expires_at",
        "created_at",
        "launched_at",
        "started_at",
        "finished_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return access.jobs_for(request)


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ["run", "old_status", "new_status", "actor", "created_at"]
    list_filter = ["new_status", "actor"]
    list_select_related = ["run"]
    search_fields = ["=run__id", "reason"]

    def has_change_permission(self, request: HttpRequest, obj: RunEvent | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RunEvent]:
        return super().get_queryset(request).filter(run__in=access.runs_for(request))


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["name", "image", "task", "is_available", "synced_at"]
    list_filter = ["task", "is_available", "image"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return access.workflows_for(request)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Operators set what data a project may read; its maintainers see it, and manage its members."""

    list_display = ["name", "trainer_image", "data_roots", "s3_prefixes", "credentials_secret", "created_at"]
    search_fields = ["name"]
    fields = ["name", "trainer_image", "data_roots", "s3_prefixes", "credentials_secret"]
    inlines = [MembershipInline]
    actions = ["register_images"]  # after changing an image: its workflows are read from it

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> list[str]:
        return [] if request.user.is_superuser else self.fields

    @admin.action(description="Register the workflows of the selected projects' trainer images")
    def register_images(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for image in sorted(set(queryset.values_list("trainer_image", flat=True))):
            try:
                synced, retired, _ = images.register(image)
            except images.DiscoveryFailed as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{images.reference(image)}: {synced} workflow(s), {retired} retired.")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return access.projects_for(request)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued on the Tokens page, the API or `manage.py create_api_token`; only their hashes
    are stored, and none is shown."""

    list_display = ["prefix", "name", "user", "project", "read_only", "expires_at", "last_used_at", "created_at"]
    list_filter = ["read_only"]
    list_select_related = ["user", "project"]
    search_fields = ["prefix", "name", "user__username"]
    fields = ["user", "name", "prefix", "project", "read_only", "expires_at", "last_used_at", "created_at"]
    readonly_fields = ["user", "prefix", "project", "read_only", "last_used_at", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return access.tokens_for(request, everyone=True)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the system writes (fires, champion moves, deliveries, the audit trail): operators read them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who did what: membership changes, tokens, promotions, cancels and admin fixes. Never edited."""

    list_display = ["at", "actor", "action", "project", "target"]
    list_filter = ["action", VISIBLE_PROJECTS]
    list_select_related = ["project"]
    search_fields = ["actor", "target"]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEntry]:
        return access.audit_for(request)


class ScheduleInline(admin.TabularInline):
    model = Schedule
    extra = 0
    fields = ["cron", "timezone", "concurrency", "catchup", "paused", "next_fire_at"]
    readonly_fields = ["next_fire_at"]


class PromotionInline(ReadOnlyInline):
    model = Promotion
    fields = readonly_fields = [
        "created_at",
        "move",
        "run",
        "previous_champion",
        "champion_score",
        "challenger_score",
        "actor",
        "reason",
    ]


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "metric", "champion", "created_at"]
    list_filter = [VISIBLE_PROJECTS]
    list_select_related = ["project"]
    search_fields = ["name"]
    readonly_fields = ["champion", "created_at", "updated_at"]
    inlines = [ScheduleInline, PromotionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Model]:
        return access.models_for(request)


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    """Every move of a champion, and every challenger turned down: who, why, and both scores."""

    list_display = [
        "model",
        "move",
        "run",
        "previous_champion",
        "champion_score",
        "challenger_score",
        "actor",
        "created_at",
    ]
    list_filter = ["move", "actor"]
    list_select_related = ["model"]
    search_fields = ["model__name", "=run__id", "reason"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Promotion]:
        return super().get_queryset(request).filter(model__in=access.models_for(request))


@admin.register(Fire)
class FireAdmin(ReadOnlyAdmin):
    list_display = ["schedule", "scheduled_time", "kind", "outcome", "run", "actor"]
    list_filter = ["kind", "outcome"]
    search_fields = ["=schedule__id", "=run__id", "reason"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Fire]:
        return super().get_queryset(request).filter(schedule__in=access.schedules_for(request))


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["project", "url", "events", "failing_after", "active", "created_at"]
    list_filter = ["active", VISIBLE_PROJECTS]
    exclude = ["secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Webhook]:
        return access.webhooks_for(request)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["webhook", "event", "status", "attempts", "response_code", "next_attempt_at", "created_at"]
    list_filter = ["status", "event", "response_code"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).filter(webhook__in=access.webhooks_for(request))
