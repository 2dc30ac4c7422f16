"""What maintainers and token holders do: add, change and remove members; issue and revoke tokens.
Each is checked here (a 400 naming the field) and leaves an audit entry; who may do it is `access`'s."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from railyard_trainer.body import InvalidRequest, fields
from training import access, audit, images
from training.models import ApiToken, AuditAction, Membership, Project, Role

TOKEN_KEYS = ("name", "project", "read_only", "expires_at")


def _role(raw: object) -> Role:
    if raw not in Role.values:
        raise InvalidRequest({"role": [f"Must be one of {', '.join(Role.values)}."]})
    return Role(raw)


def _maintainers_left(project: Project, without: Membership) -> int:
    return project.memberships.filter(role=Role.MAINTAINER).exclude(pk=without.pk).count()


def set_member(who: access.Who, project: Project, payload: object) -> tuple[Membership, bool]:
    """Add `{"username", "role"}` to `project`, or change their role; returns (membership, created)."""
    body = fields(payload, ("username", "role"), ("username", "role"))
    role, username = _role(body["role"]), body["username"]
    user = get_user_model().objects.filter(username=username).first() if isinstance(username, str) else None
    if user is None:
        raise InvalidRequest({"username": [f"There is no user named {username!r}."]})
    actor = access.caller(who).user
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # one membership change of a project at a time
        membership = project.memberships.filter(user=user).first()
        if membership is None:
            membership = Membership.objects.create(project=project, user=user, role=role)
            audit.record(actor, AuditAction.MEMBER_ADDED, project, username, role=role)
            return membership, True
        if (
            membership.role == Role.MAINTAINER
            and role != Role.MAINTAINER
            and not _maintainers_left(project, membership)
        ):
            raise InvalidRequest({"role": [f"{username} is the last maintainer of {project.name}; add another first."]})
        if membership.role != role:
            audit.record(actor, AuditAction.MEMBER_CHANGED, project, username, role=role, was=membership.role)
            membership.role = role
            membership.save(update_fields=["role"])
    return membership, False


def remove_member(who: access.Who, project: Project, username: str) -> bool:
    """Take `username` out of `project`; False when they were not in it."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        membership = project.memberships.filter(user__username=username).first()
        if membership is None:
            return False
        if membership.role == Role.MAINTAINER and not _maintainers_left(project, membership):
            raise InvalidRequest(
                {"username": [f"{username} is the last maintainer of {project.name}; add another first."]}
            )
        membership.delete()
        audit.record(access.caller(who).user, AuditAction.MEMBER_REMOVED, project, username, role=membership.role)
    return True


def _expiry(raw: object) -> datetime | None:
    if raw is None:
        return None
    moment = parse_datetime(raw) if isinstance(raw, str) else None
    if moment is None:
        raise InvalidRequest(
            {"expires_at": ["Must be an ISO 8601 date and time, or null for a token that does not expire."]}
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.utc)
    if moment <= timezone.now():
        raise InvalidRequest({"expires_at": ["Must be in the future."]})
    return moment


def issue_token(who: access.Who, payload: object) -> tuple[ApiToken, str]:
    """A new token for `who`'s user from `{"name", "project", "read_only", "expires_at"}`: limited to a
    project they belong to, if named. Returns it with its key, shown this once."""
    _unlimited(who)
    body = fields(payload, TOKEN_KEYS, ("name",))
    errors: dict[str, list[str]] = {}
    name = body["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
        errors["name"] = ["Must be 1 to 100 printable characters: what the token is for."]
    project = None
    if (named := body.get("project")) is not None:
        project = access.projects_for(who).filter(name=named).first() if isinstance(named, str) else None
        if project is None:
            errors["project"] = [f"You belong to no project named {named!r}."]
    read_only = body.get("read_only", False)
    if not isinstance(read_only, bool):
        errors["read_only"] = ["Must be true or false."]
    try:
        expires_at = _expiry(body.get("expires_at"))
    except InvalidRequest as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidRequest(errors)
    user = access.caller(who).user
    with transaction.atomic():
        token, key = ApiToken.issue(user, name.strip(), project=project, read_only=read_only, expires_at=expires_at)
        limits = {"read_only": read_only, "expires_at": expires_at.isoformat() if expires_at else None}
        audit.record(user, AuditAction.TOKEN_CREATED, project, f"token {token.prefix} ({token.name})", **limits)
    return token, key


def revoke_token(who: access.Who, token: ApiToken) -> None:
    _unlimited(who)
    with transaction.atomic():
        audit.record(
            access.caller(who).user,
            AuditAction.TOKEN_REVOKED,
            token.project,
            f"token {token.prefix} ({token.name})",
            owner=token.user.get_username(),
        )
        token.delete()


def _unlimited(who: access.Who) -> None:
    """Tokens are managed signed in, or with a token of no limits: a limited one cannot widen itself."""
    token = access.caller(who).token
    if token is not None and (token.read_only or token.project_id is not None):
        raise PermissionDenied("A token limited to a project or to reading cannot issue or revoke tokens.")


def set_image(who: access.Who, project: Project, payload: object) -> tuple[int, list[str]]:
    """Give `project` the trainer image `{"image"}` (empty: the installation's), registering its
    workflows first; returns (workflows available, warnings). InvalidRequest naming `image` when it
    cannot be read."""
    raw = fields(payload, ("image",), ("image",))["image"]
    if not isinstance(raw, str) or len(raw) > 255 or any(ch.isspace() for ch in raw) or not raw.isprintable():
        raise InvalidRequest({"image": ["Must be an image reference (registry/name:tag), or empty for the default."]})
    try:
        synced, _, warnings = images.register(raw)
    except images.DiscoveryFailed as exc:
        raise InvalidRequest({"image": [str(exc)]}) from None
    if not synced:
        raise InvalidRequest({"image": [f"{images.reference(raw)} holds no workflows."]})
    with transaction.atomic():
        project.trainer_image = raw
        project.save(update_fields=["trainer_image"])
        audit.record(access.caller(who).user, AuditAction.IMAGE_SET, project, images.reference(raw), workflows=synced)
    return synced, warnings
