"""The pages of models: the list, and a model with its retrains, schedules and champion's history;
thin views over `services` and `champions`, whose actions post back here."""

from __future__ import annotations

from zoneinfo import available_timezones

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone as clock
from django.views.decorators.http import require_POST

from railyard_trainer.body import InvalidRequest
from railyard_trainer.vocabulary import METRICS, Catchup, Concurrency, Move, RunStatus, higher_is_better
from training import access, charts
from training.models import Role, Schedule
from training.retraining import champions, dates, services

#: What the schedule form suggests (any IANA name is accepted).
TIMEZONES = sorted(available_timezones())
#: Models per page of the list.
PAGE_SIZE = 50
#: Retrains the model page draws and lists.
HISTORY = 100
SPARK_POINTS = 20


def _models(request: HttpRequest):
    return access.models_for(request).select_related("project", "champion")


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(_models(request).prefetch_related("schedules").order_by("name"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = []
    for model in page:
        recent = list(model.runs.order_by("-id")[:SPARK_POINTS])
        scores = [score for run in reversed(recent) if (score := champions.score(run, model.metric)) is not None]
        rows.append(
            {
                "model": model,
                "champion_score": champions.score(model.champion, model.metric),
                "latest": recent[0] if recent else None,
                "next_fire": services.next_fire(model.schedules.all()),
                "spark": charts.sparkline(scores),
            }
        )
    return render(request, "training/models.html", {"rows": rows, "page": page})


@login_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(_models(request), name=name)
    runs = list(model.runs.select_related("fire").order_by("-id")[:HISTORY])
    promotions = list(model.promotions.select_related("run", "previous_champion"))
    crowned = {p.run_id for p in promotions if p.move in (Move.PROMOTED, Move.ROLLED_BACK)}
    moves = {}
    for promotion in reversed(promotions):  # oldest first: a run's latest move is what shows
        moves[promotion.run_id] = promotion.get_move_display()
    schedules = [
        {"schedule": schedule, "upcoming": services.upcoming(schedule), "fires": list(schedule.fires.all()[:10])}
        for schedule in model.schedules.all()
    ]
    return render(
        request,
        "training/model_detail.html",
        {
            "model": model,
            "metric_name": METRICS[model.metric].display if model.metric in METRICS else model.metric,
            "higher_is_better": higher_is_better(model.metric),
            "runs": runs,
            "schedules": schedules,
            "promotions": promotions,
            "awaiting": champions.awaiting_approval(model),
            "concurrency": [word.value for word in Concurrency],
            "catchup": [word.value for word in Catchup],
            "timezones": TIMEZONES,
            "chart_specs": charts.retrains(
                [run for run in runs if run.status == RunStatus.SUCCEEDED], model.metric, crowned, moves
            ),
        },
    )


def _schedule(request: HttpRequest, pk: int) -> Schedule:
    return access.get(access.schedules_for(request).select_related("model__project"), request, Role.MEMBER, pk=pk)


@login_required
@require_POST
def schedule_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    schedule = _schedule(request, pk)
    if action == "pause":
        services.pause(schedule)
        messages.success(request, f"Schedule {schedule.pk} paused.")
    elif action == "resume":
        services.resume(schedule)
        messages.success(request, f"Schedule {schedule.pk} resumed: it fires next at the next time after now.")
    else:
        fire = services.fire_now(schedule, request.user.get_username())
        if fire.run_id:
            messages.success(request, f"Run #{fire.run_id} started.")
        else:
            messages.error(request, f"Nothing started: {fire.reason}")
    return redirect(schedule.model)


@login_required
@require_POST
def retrain_now(request: HttpRequest, name: str) -> HttpResponse:
    model = access.get(_models(request), request, Role.MEMBER, name=name)
    try:
        run = services.retrain(model, request.user, clock.now(), reason=f"retrain of {model.name} by hand")
    except InvalidRequest as exc:
        messages.error(request, f"The model's request does not validate now: {exc}")
        return redirect(model)
    return redirect(run)


@login_required
@require_POST
def champion_action(request: HttpRequest, name: str, action: str) -> HttpResponse:
    model = access.get(_models(request), request, Role.MAINTAINER, name=name)
    actor, reason = request.user.get_username(), request.POST.get("reason", "")[:1000]
    try:
        if action == "rollback":
            moved = champions.rollback(model, actor, reason)
        else:
            run = get_object_or_404(access.runs_for(request), pk=_whole(request.POST.get("run", "")))
            moved = (champions.promote if action == "promote" else champions.reject)(model, run, actor, reason)
    except champions.CannotMove as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run #{moved.run_id}: {moved.get_move_display().lower()}.")
    return redirect(model)


def _whole(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0


def _refused(exc: InvalidRequest) -> str:
    return "; ".join(f"{path}: {' '.join(messages)}" for path, messages in exc.errors.items())


@login_required
@require_POST
def add_schedule(request: HttpRequest, name: str) -> HttpResponse:
    model = access.get(_models(request), request, Role.MEMBER, name=name)
    fields = {key: request.POST.get(key, "").strip() for key in ("cron", "timezone", "concurrency", "catchup")}
    try:
        schedule = services.add_schedule(model, {key: value for key, value in fields.items() if value})
    except InvalidRequest as exc:
        messages.error(request, f"The schedule was not added: {_refused(exc)}")
    else:
        first = services.upcoming(schedule, 1)[0]
        messages.success(
            request, f"Schedule {schedule.pk} added: it fires next at {first:%Y-%m-%d %H:%M} {first.tzinfo}."
        )
    return redirect(model)


@login_required
@require_POST
def model_from_run(request: HttpRequest, pk: int) -> HttpResponse:
    """A model whose template is a run's request, its fixed dates made to slide (or kept, if asked)."""
    run = get_object_or_404(access.runs_for(request).select_related("project"), pk=pk)
    template = dates.slide(run.request) if request.POST.get("slide") else run.request
    payload = {"name": request.POST.get("name", "").strip(), "project": run.project.name, "request": template}
    try:
        model = services.create_model(request, payload)
    except InvalidRequest as exc:
        messages.error(request, f"No model was made: {_refused(exc)}")
        return redirect(run)
    messages.success(request, f"Model {model.name} made from run #{run.pk}; add a schedule to retrain it.")
    return redirect(model)
