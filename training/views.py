"""The dashboard's pages: thin views over `services`, `artifacts`, `charts` and `compare`."""

from __future__ import annotations

import hmac
import json
from datetime import date
from functools import lru_cache
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from railyard_trainer import parameters
from railyard_trainer import vocabulary as v
from railyard_trainer.body import InvalidRequest
from railyard_trainer.vocabulary import RunStatus, choices
from training import access, artifacts, charts, compare, images, services
from training.conf import railyard
from training.forms import LaunchForm, initial_from_request
from training.logs import progress, run_log, time_left
from training.models import Project, Role, Run, Segment
from training.segments import services as segmented
from training.segments import views as segments
from training.teams import data

LOG_TAIL_LINES = 200
PAGE_SIZE = 25
STATUS_COUNTS_SECONDS = 15
FILTERS = {"status": "status", "project": "project__name", "workflow": "workflow__name", "user": "user"}


def status_counts(user: AbstractBaseUser) -> dict[str, int]:
    """The user's visible runs per status, cached briefly: counting a large table on every page view
    is not worth it."""
    key = f"railyard:status-counts:{user.pk}"
    counts = cache.get(key)
    if counts is None:
        counts = dict(access.runs_for(user).order_by().values_list("status").annotate(n=Count("id")))
        cache.set(key, counts, STATUS_COUNTS_SECONDS)
    return {status: counts.get(status, 0) for status in [status.value for status in RunStatus]}


def _id(value: str) -> int | None:
    """A record id from a query parameter; None for anything else ('³' and 10**30 included)."""
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """Newest first, paged by a cursor (the last id seen), so no page counts the whole table."""
    # A segmented request's children are on its page, not in everyone's list.
    runs = access.runs_for(request).filter(parent__isnull=True).with_related().order_by("-id")
    filters: dict[str, str] = {}
    for param, field in FILTERS.items():
        if value := request.GET.get(param, "").strip():
            runs = runs.filter(**{field: value})
            filters[param] = value
    if query := request.GET.get("q", "").strip():
        runs = runs.filter(Q(model_description__icontains=query))
        filters["q"] = query
    if after := _date(request.GET.get("created_after", "")):
        runs = runs.filter(created_at__date__gte=after)
        filters["created_after"] = after.isoformat()
    if before := _date(request.GET.get("created_before", "")):
        runs = runs.filter(created_at__date__lte=before)
        filters["created_before"] = before.isoformat()
    # Best first by each run's primary metric: the top of the list, for one workflow or project at a
    # time (filter first); newest first pages on by a cursor.
    best_first = request.GET.get("sort") == "metric"
    cursor = None if best_first else _id(request.GET.get("before_id", ""))
    if best_first:
        runs = runs.best_first()
    elif cursor is not None:
        runs = runs.filter(id__lt=cursor)
    page = list(runs[: PAGE_SIZE + 1])
    return render(
        request,
        "training/run_list.html",
        {
            "runs": page[:PAGE_SIZE],
            "next_cursor": page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE and not best_first else None,
            "paged": cursor is not None,
            "best_first": best_first,
            "sort_query": urlencode({**filters, "sort": "metric"}),
            "newest_query": urlencode(filters),
            "filters": filters,
            "counts": status_counts(request.user),
            "statuses": choices(RunStatus),
            "projects": access.projects_for(request).values_list("name", flat=True),
            "workflows": access.workflows_for(request).values_list("name", flat=True).distinct(),
        },
    )


def _results(run: Run) -> tuple[dict, list[dict]]:
    """What a run shows once it has ended: the results' template context and the chart specs."""
    evaluation = artifacts.read_json(run, v.EVALUATION) if run.status == RunStatus.SUCCEEDED else None
    specs = charts.specs(evaluation)
    summary = dict(run.data_summary or {})
    # Shown in their own places: the sources read as a table, changes in the banner, seconds as training time.
    sources = summary.pop("sources", [])
    for shown_elsewhere in ("data_changes", "data_compared_with", "stage_seconds"):
        summary.pop(shown_elsewhere, None)
    context = {
        "metrics": sorted(run.metrics.items()),
        "summary": summary,
        "sources": sources,
        "artifacts": run.latest_artifacts,
        "has_charts": bool(specs),
    }
    return context, specs


def curl_command(request: HttpRequest, run: Run) -> str:
    """The run's exact request as a curl command against this server's API."""
    body = json.dumps(run.request, indent=2).replace("'", "'\\''")
    url = request.build_absolute_uri(reverse("api-runs"))
    return (
        f'curl -X POST {url} \\\n  -H "Authorization: Token $RAILYARD_TOKEN" \\\n'
        f"  -H 'Content-Type: application/json' \\\n  -d '{body}'"
    )


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(access.runs_for(request).with_history(), pk=pk)
    results, specs = _results(run)
    segmented = segments.context(request, run)
    specs = segmented.pop("segment_chart", []) + specs
    results["has_charts"] = bool(specs)
    log_tail = run_log(run, LOG_TAIL_LINES)
    stage, percent = progress(log_tail)
    return render(
        request,
        "training/run_detail.html",
        {
            "run": run,
            "request_json": json.dumps(run.request, indent=2),
            "template_json": json.dumps(run.template, indent=2) if run.template is not None else "",
            "decision": v.Decision((run.comparison or {}).get("decision", "kept")).label,
            "curl": curl_command(request, run),
            "chart_specs": specs,
            "log_tail": log_tail,
            "stage": stage,
            "progress": percent,
            "time_left": time_left(run, log_tail, access.runs_for(request)) if run.state.is_active else None,
            "is_active": run.state.is_active,
            "jobs": list(run.jobs.all()),
            "earlier_artifacts": sorted(
                (a for a in run.artifacts.all() if a.attempt != run.attempt), key=lambda a: (-a.attempt, a.name)
            ),
            **results,
            **segmented,
            "segment": Segment.objects.filter(run=run).first() if run.kind == v.RunKind.SEGMENT else None,
            "composition": _composition(request.user, run),
        },
    )


def _composition(user: AbstractBaseUser, run: Run) -> dict | None:
    """A composition's members beside it: each one's score on the composition's holdout and on its own."""
    if run.kind != v.RunKind.COMPOSITION or run.status != RunStatus.SUCCEEDED:
        return None
    summary = artifacts.read_json(run, v.COMPOSITION) or {}
    visible = access.runs_for(user).in_bulk([member["run"] for member in summary.get("members", [])])
    rows = [
        {"run": visible.get(member["run"]), "id": member["run"], "here": member["score"]}
        for member in summary.get("members", [])
    ]
    for row in rows:
        row["own"] = (row["run"].metrics or {}).get(summary.get("metric")) if row["run"] else None
    return {**summary, "rows": rows}


@login_required
def run_live(request: HttpRequest, pk: int) -> JsonResponse:
    """What the run page needs to follow a run without reloading."""
    run = get_object_or_404(access.runs_for(request).with_related().prefetch_related("artifacts"), pk=pk)
    log_tail = run_log(run, LOG_TAIL_LINES)
    stage, percent = progress(log_tail)
    body = {
        "status": run.status,
        "is_active": run.state.is_active,
        "status_message": run.status_message,
        "failure_reason": run.failure_reason,
        "stage": stage,
        "progress": percent,
        "time_left": time_left(run, log_tail, access.runs_for(request)) if run.state.is_active else None,
        "log": log_tail,
    }
    if not run.state.is_active:
        results, specs = _results(run)
        body["results_html"] = render_to_string("training/_results.html", results, request=request)
        body["charts"] = specs
    return JsonResponse(body)


@login_required
def run_statuses(request: HttpRequest) -> JsonResponse:
    """The statuses of the runs a list shows, so that its active rows can update themselves."""
    ids = [pk for pk in map(_id, request.GET.get("ids", "").split(",")) if pk is not None][:100]
    visible = access.runs_for(request).filter(pk__in=ids)
    return JsonResponse({str(pk): status for pk, status in visible.values_list("pk", "status")})


@login_required
def compare_runs(request: HttpRequest) -> HttpResponse:
    ids = [pk for pk in map(_id, request.GET.getlist("runs")) if pk is not None]
    if not 2 <= len(set(ids)) <= 6:
        messages.error(request, "Pick between 2 and 6 runs to compare.")
        return redirect("runs")
    found = {run.pk: run for run in access.runs_for(request).with_related().filter(pk__in=ids)}
    runs = [found[pk] for pk in dict.fromkeys(ids) if pk in found]
    if len(runs) < 2:
        messages.error(request, "Those runs do not exist (or are not yours to see); pick at least 2.")
        return redirect("runs")
    evaluations = [
        artifacts.read_json(run, v.EVALUATION) if run.status == RunStatus.SUCCEEDED else None for run in runs
    ]
    return render(
        request,
        "training/compare.html",
        {
            "runs": runs,
            "metrics": compare.metrics_table(runs),
            "diff": compare.request_diff(runs),
            "data_diff": compare.data_diff(runs),
            "chart_specs": compare.overlaid(runs, evaluations),
        },
    )


@login_required
def launch(request: HttpRequest) -> HttpResponse:
    initial, original = {}, None
    if (clone := _id(request.GET.get("clone", ""))) is not None:
        original = get_object_or_404(access.runs_for(request), pk=clone)
        initial = initial_from_request(original.request)
    workflows = access.workflows_for(request).filter(is_available=True)
    form = LaunchForm(request.POST or None, initial=initial, workflows=workflows)
    if request.method == "POST" and form.is_valid():
        try:
            run, _ = services.submit(request, form.request_payload, cloned_from=original)
        except InvalidRequest as exc:  # the project: an unknown one they may not create
            form.add_error("project", exc.words)
        except PermissionDenied as exc:  # the project: one they may not launch in
            form.add_error("project", str(exc))
        else:
            messages.success(request, f"Run {run.pk} queued.")
            return redirect(run)
    catalogue = {
        w.name: {"task": w.task, "description": w.description, "default_params": w.default_params}
        for w in workflows.order_by("-image")  # the installation's last: its entries win a shared name
    }
    context = {"form": form, "clone": clone, "catalogue": catalogue, "vocabulary": v.for_browser()}
    return render(request, "training/launch.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = access.get(access.runs_for(request), request, Role.MEMBER, pk=pk)
    if services.cancel(run, actor=request.user.get_username()):
        messages.success(request, f"Run {run.pk} cancelled.")
    else:
        messages.error(request, f"Run {run.pk} had already ended.")
    return redirect(run)


@login_required
@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    run = access.get(access.runs_for(request), request, Role.MEMBER, pk=pk)
    if request.POST.get("failed_only"):
        try:
            run = segmented.retry_failed(run, request.user.get_username())
        except segmented.CannotRetry as exc:
            messages.error(request, str(exc))
            return redirect(run)
        messages.success(request, f"Run {pk} retrains its failed segment models.")
        return redirect(run)
    new_run = services.retry(run, request)
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


@login_required
def source_columns(request: HttpRequest) -> JsonResponse:
    """The columns and types of a data source, for the launch form's pickers."""
    from railyard_trainer.errors import BadDataError
    from railyard_trainer.sources import columns

    source, fmt, path = (request.GET.get(k, "").strip() for k in ("source", "format", "path"))
    if not path:
        return JsonResponse({"error": "Give the data path first."}, status=400)
    # The named project's data, if the caller belongs to it; a project yet to be made has the defaults.
    named = request.GET.get("project", "").strip()
    project = access.projects_for(request).filter(name=named).first()
    if project is None and Project.objects.filter(name=named).exists():
        return JsonResponse({"error": f"You are not a member of project {named}."}, status=403)
    reach = data.of(project)
    try:
        found = columns(source, fmt, path, roots=reach.roots, base=reach.base, prefixes=reach.s3_prefixes)
    except (BadDataError, ValueError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"columns": [{"name": name, "type": kind} for name, kind in found]})


#: The metric whose trend a workflow or project page draws, by task.
RECENT_RUNS = 20


def runs_page(request: HttpRequest, heading: str, runs, metric: str, **context: object) -> HttpResponse:
    recent = list(runs.with_related().order_by("-id")[:RECENT_RUNS])
    succeeded = list(runs.filter(status=RunStatus.SUCCEEDED).order_by("-id")[:100])
    return render(
        request,
        "training/runs_of.html",
        {
            "heading": heading,
            "runs": recent,
            "metric": metric,
            "chart_specs": charts.trend(succeeded, metric),
            **context,
        },
    )


@login_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    visible = Q(runs__in=access.runs_for(request))
    workflows = access.workflows_for(request).annotate(run_count=Count("runs", filter=visible))
    workflows = workflows.order_by("-is_available", "image", "name")
    return render(request, "training/workflows.html", {"workflows": workflows})


@login_required
def workflow_detail(request: HttpRequest, name: str) -> HttpResponse:
    image = request.GET.get("image", images.DEFAULT)
    workflow = get_object_or_404(access.workflows_for(request), name=name, image=image)
    declared = workflow.parameters
    return runs_page(
        request,
        f"Workflow {workflow.name}",
        access.runs_for(request).filter(workflow=workflow),
        v.PRIMARY_WORKFLOW_METRIC.get(workflow.task, v.PRIMARY_METRIC[v.BINARY]),
        workflow=workflow,
        parameters=None
        if declared is None
        else [
            {"name": key, "accepts": parameters.describe(spec["accepts"]), "default": json.dumps(spec["default"])}
            for key, spec in declared.items()
        ],
        filter_url=f"{reverse('runs')}?workflow={workflow.name}",
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape (`training.metrics`), for a bearer of RAILYARD_METRICS_TOKEN; without the
    setting there is no such page."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from training.metrics import REGISTRY

    token = railyard.metrics_token
    if not token:
        raise Http404("metrics are off (RAILYARD_METRICS_TOKEN is not set)")
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(sent.encode(), token.encode()):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
