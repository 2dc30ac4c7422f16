"""Who may see and do what: the one seam every query of projects, runs, jobs, artifacts, logs, models,
schedules and webhooks goes through.

- A project's members see its runs, models and logs (viewer), launch, cancel, retry and edit
  schedules (member), and manage members, webhooks and promotion (maintainer); superusers are
  operators and reach everything.
- An API token may be limited to one project and to reading; the limits narrow whatever its user may.
- Everything takes `who`: a request (the page's or the API's, whose token is then applied) or a user.
  Lists hold only what `who` may see; an object they may not see is a 404 (`get`), one they may see
  but not act on a 403 that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Model as DjangoModel
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from rest_framework.request import Request

from railyard_trainer.body import InvalidRequest
from training import audit
from training.conf import railyard
from training.models import (
    ApiToken,
    Artifact,
    AuditAction,
    AuditEntry,
    Job,
    JobQuerySet,
    Membership,
    Model,
    Project,
    Role,
    Run,
    RunQuerySet,
    Schedule,
    Webhook,
    Workflow,
)

Who = HttpRequest | Request | AbstractBaseUser | AnonymousUser

#: What each role may do, in words, for refusals.
DOES = {
    Role.VIEWER: "see runs, models, artifacts and logs",
    Role.MEMBER: "launch, cancel and retry runs and edit schedules",
    Role.MAINTAINER: "manage members, webhooks and promotion",
}


@dataclass(frozen=True)
class Caller:
    user: AbstractBaseUser | AnonymousUser
    token: ApiToken | None = None

    @property
    def is_operator(self) -> bool:
        return bool(self.user.is_authenticated and self.user.is_superuser)

    def reaches_every_project(self) -> bool:
        return self.is_operator and (self.token is None or self.token.project_id is None)

    def only_reads_for(self, role: Role) -> bool:
        """Whether its token is read-only and `role` asks for more than reading."""
        return self.token is not None and self.token.read_only and role != Role.VIEWER


def caller(who: Who) -> Caller:
    """The user behind `who`, with the API token it came with, if any."""
    if isinstance(who, HttpRequest | Request):
        token = getattr(who, "auth", None)
        return Caller(who.user, token if isinstance(token, ApiToken) else None)
    return Caller(who)


def at_least(role: Role) -> list[Role]:
    return [r for r in Role if r.rank >= Role(role).rank]


def projects_for(who: Who, role: Role = Role.VIEWER) -> QuerySet[Project]:
    """The projects in which `who` may do what `role` may."""
    c = caller(who)
    if not c.user.is_authenticated or c.only_reads_for(role):
        return Project.objects.none()
    if c.is_operator:
        projects = Project.objects.all()
    else:
        projects = Project.objects.filter(memberships__user=c.user, memberships__role__in=at_least(role))
    if c.token is not None and c.token.project_id is not None:
        projects = projects.filter(pk=c.token.project_id)
    return projects


def _within(queryset: QuerySet, who: Who, role: Role, field: str = "project") -> QuerySet:
    c = caller(who)
    if c.reaches_every_project() and not c.only_reads_for(role):
        return queryset
    return queryset.filter(**{f"{field}__in": projects_for(who, role)})


def runs_for(who: Who, role: Role = Role.VIEWER) -> RunQuerySet:
    """The runs `who` may see (their logs and artifacts go with them), or act on as `role`."""
    return _within(Run.objects.all(), who, role)


def jobs_for(who: Who, role: Role = Role.VIEWER) -> JobQuerySet:
    """The jobs `who` may see: those carrying a run they may see."""
    return Job.objects.filter(memberships__run__in=runs_for(who, role)).distinct()


def artifacts_for(who: Who) -> QuerySet[Artifact]:
    """The artifacts `who` may download: those of runs they may see."""
    return Artifact.objects.filter(run__in=runs_for(who))


def models_for(who: Who, role: Role = Role.VIEWER) -> QuerySet[Model]:
    """The models `who` may see (their schedules go with them), or act on as `role`."""
    return _within(Model.objects.all(), who, role)


def schedules_for(who: Who, role: Role = Role.VIEWER) -> QuerySet[Schedule]:
    return _within(Schedule.objects.all(), who, role, field="model__project")


def webhooks_for(who: Who) -> QuerySet[Webhook]:
    """The webhooks `who` may see and remove: their projects' as maintainers; every project's, for operators."""
    hooks = _within(Webhook.objects.all(), who, Role.MAINTAINER)
    return hooks if caller(who).reaches_every_project() else hooks.filter(project__isnull=False)


def tokens_for(who: Who, everyone: bool = False) -> QuerySet[ApiToken]:
    """The API tokens `who` may see and revoke: their own, or with `everyone` (the admin's) an operator's
    reach: every user's."""
    c = caller(who)
    if not c.user.is_authenticated:
        return ApiToken.objects.none()
    tokens = ApiToken.objects.select_related("user", "project")
    return tokens if everyone and c.reaches_every_project() else tokens.filter(user=c.user)


def audit_for(who: Who) -> QuerySet[AuditEntry]:
    """The audit entries `who` may read: their projects' (an operator's: every one, and those of no project)."""
    entries = AuditEntry.objects.select_related("project")
    if caller(who).reaches_every_project():
        return entries
    return entries.filter(project__in=projects_for(who))


def workflows_for(who: Who) -> QuerySet[Workflow]:
    """The workflows `who` may see and launch: the installation's trainer's, and those of the images
    of their projects (an operator's: every image's)."""
    if caller(who).reaches_every_project():
        return Workflow.objects.all()
    images = {""} | set(projects_for(who).exclude(trainer_image="").values_list("trainer_image", flat=True))
    return Workflow.objects.filter(image__in=images)


def get(queryset: QuerySet, who: Who, role: Role = Role.VIEWER, **lookup: object) -> DjangoModel:
    """One object of a queryset narrowed by this module: a 404 unless found, a 403 unless `who` may
    act on its project as `role`."""
    found = queryset.filter(**lookup).first()
    if found is None:
        raise Http404("Not found.")
    if project := _project_of(found):  # a webhook of every project is an operator's, who may do anything
        require(who, project, role)
    return found


def _project_of(found: DjangoModel) -> Project | None:
    if isinstance(found, Project):
        return found
    if isinstance(found, Schedule):
        return found.model.project
    return found.project


def role_in(who: Who, project: Project) -> Role | None:
    """`who`'s role in `project` (an operator's is maintainer), before any token's limits."""
    c = caller(who)
    if c.is_operator:
        return Role.MAINTAINER
    if not c.user.is_authenticated:
        return None
    role = Membership.objects.filter(project=project, user=c.user).values_list("role", flat=True).first()
    return Role(role) if role else None


def may(who: Who, project: Project, role: Role) -> bool:
    return projects_for(who, role).filter(pk=project.pk).exists()


def require(who: Who, project: Project, role: Role) -> None:
    """PermissionDenied, saying why, unless `who` may act in `project` as `role`."""
    if may(who, project, role):
        return
    c = caller(who)
    if c.only_reads_for(role):
        raise PermissionDenied("This API token is read-only.")
    if c.token is not None and c.token.project_id not in (None, project.pk):
        raise PermissionDenied(f"This API token reaches only project {c.token.project}.")
    have = role_in(who, project)
    standing = f"you are a {have}" if have else "you are not a member"
    raise PermissionDenied(f"Project {project.name}: to {DOES[role]} takes the {role} role ({standing}).")


def may_create_projects(who: Who) -> bool:
    c = caller(who)
    if not c.user.is_authenticated or (c.token is not None and (c.token.read_only or c.token.project_id)):
        return False
    return railyard.anyone_creates_projects or c.user.has_perm("training.add_project")


def create_project(who: Who, name: str) -> Project:
    """A new project, `who` its maintainer; InvalidRequest when the name is taken."""
    user = caller(who).user
    try:
        with transaction.atomic():
            project = Project.objects.create(name=name)
            Membership.objects.create(project=project, user=user, role=Role.MAINTAINER)
            audit.record(user, AuditAction.PROJECT_CREATED, project, project.name)
    except IntegrityError:
        raise InvalidRequest({"name": [f"A project named {name!r} exists already."]}) from None
    return project


def project_to_launch(who: Who, name: str, role: Role = Role.MEMBER) -> Project:
    """The project a request names, where `who` must act as `role`: created for them, as its
    maintainer, when it is unknown and they may create projects; a 400 naming `project` when they
    may not, a 403 saying why when it exists and they may not act in it."""
    project = Project.objects.filter(name=name).first()
    if project is None:
        if not may_create_projects(who):
            raise InvalidRequest({"project": [f"There is no project named {name!r}, and you may not create one."]})
        try:
            return create_project(who, name)
        except InvalidRequest:  # another request created it first
            project = Project.objects.get(name=name)
    require(who, project, role)
    return project
