"""The dashboard's pages: thin views over `services`, `artifacts` and `charts`."""

from __future__ import annotations

import json
from functools import lru_cache

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from training import artifacts, charts, services
from training.api import run_log
from training.forms import LaunchForm
from training.models import Project, Run, Workflow
from training.states import RunStatus

LOG_TAIL_LINES = 200
FILTERS = {"status": "status", "project": "project__name", "workflow": "workflow__name", "user": "user"}


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = Run.objects.with_related()
    active_filters = {}
    for param, field in FILTERS.items():
        if value := request.GET.get(param, "").strip():
            runs = runs.filter(**{field: value})
            active_filters[param] = value
    page = Paginator(runs, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "training/run_list.html",
        {
            "page": page,
            "filters": active_filters,
            "statuses": RunStatus.choices,
            "projects": Project.objects.values_list("name", flat=True),
            "workflows": Workflow.objects.values_list("name", flat=True),
        },
    )


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.with_related().prefetch_related("events", "artifacts"), pk=pk)
    evaluation = artifacts.read_json(run, "evaluation.json") if run.status == RunStatus.SUCCEEDED else None
    figures = [charts.to_html(fig, f"chart-{i}") for i, fig in enumerate(charts.figures(evaluation))]
    return render(
        request,
        "training/run_detail.html",
        {
            "run": run,
            "request_json": json.dumps(run.request, indent=2),
            "metrics": sorted(run.metrics.items()),
            "summary": run.data_summary,
            "charts": figures,
            "log_tail": run_log(run, LOG_TAIL_LINES),
            "is_active": run.state.is_active,
        },
    )


@login_required
def launch(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run, _ = services.submit(request.user, form.request_payload)
        messages.success(request, f"Run {run.pk} queued.")
        return redirect(run)
    return render(request, "training/launch.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    if services.cancel(run, actor=request.user.get_username()):
        messages.success(request, f"Run {run.pk} cancelled.")
    else:
        messages.error(request, f"Run {run.pk} had already ended.")
    return redirect(run)


@login_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    new_run = services.retry(get_object_or_404(Run, pk=pk), request.user)
    messages.success(request, f"Run {new_run.pk} queued as a retry of run {pk}.")
    return redirect(new_run)


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


@cache_control(public=True, max_age=86400)
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed plotly package, so the dashboard needs no CDN."""
    return HttpResponse(_plotly_js(), content_type="application/javascript")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
