"""The pages of teams: projects (create one, its members, its audit trail) and one's API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from railyard_trainer import vocabulary as v
from railyard_trainer.body import InvalidRequest
from railyard_trainer.schema import is_slug
from training import access, audit
from training.models import Role
from training.teams import data, services
from training.views import runs_page


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not access.may_create_projects(request):
            raise PermissionDenied("You may not create projects: an operator grants that.")
        if not is_slug(name):
            messages.error(request, "A project's name uses letters, digits, '-' and '_' only (at most 100).")
        else:
            try:
                project = access.create_project(request, name)
            except InvalidRequest as exc:
                messages.error(request, exc.words)
            else:
                messages.success(request, f"Project {project.name} created: you are its maintainer.")
                return redirect("project-detail", project.name)
    visible = Q(runs__in=access.runs_for(request))
    projects = access.projects_for(request).annotate(run_count=Count("runs", filter=visible)).order_by("name")
    context = {"projects": projects, "may_create": access.may_create_projects(request)}
    return render(request, "training/projects.html", context)


@login_required
def project_detail(request: HttpRequest, name: str) -> HttpResponse:
    project = access.get(access.projects_for(request), request, name=name)
    role = access.role_in(request, project)
    return runs_page(
        request,
        f"Project {project.name}",
        access.runs_for(request).filter(project=project),
        request.GET.get("metric", v.PRIMARY_METRIC[v.BINARY]),
        filter_url=f"{reverse('runs')}?project={project.name}",
        project=project,
        role=role,
        manages=role == Role.MAINTAINER,
        members=project.memberships.select_related("user"),
        roles=Role.values,
        audit=audit.recent(project),
        data=data.of(project),
    )


@login_required
@require_POST
def set_member(request: HttpRequest, name: str) -> HttpResponse:
    project = access.get(access.projects_for(request), request, Role.MAINTAINER, name=name)
    payload = {key: request.POST.get(key, "").strip() for key in ("username", "role")}
    try:
        membership, created = services.set_member(request, project, payload)
    except InvalidRequest as exc:
        messages.error(request, exc.words)
    else:
        done = "added as" if created else "is now"
        messages.success(request, f"{membership.user.get_username()} {done} {membership.role}.")
    return redirect("project-detail", project.name)


@login_required
@require_POST
def remove_member(request: HttpRequest, name: str, username: str) -> HttpResponse:
    project = access.get(access.projects_for(request), request, Role.MAINTAINER, name=name)
    try:
        removed = services.remove_member(request, project, username)
    except InvalidRequest as exc:
        messages.error(request, exc.words)
    else:
        if removed:
            messages.success(request, f"{username} removed from {project.name}.")
    return redirect("project-detail", project.name)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """One's API tokens; a new one's key is shown on the answer to its form, and never again."""
    new_key, status = None, 200
    if request.method == "POST":
        expires = request.POST.get("expires_at", "").strip()
        payload = {
            "name": request.POST.get("name", "").strip(),
            "project": request.POST.get("project") or None,
            "read_only": bool(request.POST.get("read_only")),
            "expires_at": f"{expires}T00:00:00Z" if expires else None,
        }
        try:
            token, new_key = services.issue_token(request, payload)
        except InvalidRequest as exc:
            messages.error(request, f"No token was made: {exc.words}")
            status = 400
        else:
            messages.success(request, f"Token {token.name} made: copy its key now, it is not shown again.")
    context = {
        "tokens": access.tokens_for(request),
        "projects": access.projects_for(request).values_list("name", flat=True),
        "new_key": new_key,
    }
    return render(request, "training/tokens.html", context, status=status)


@login_required
@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(access.tokens_for(request), pk=pk)
    services.revoke_token(request, token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("tokens")
