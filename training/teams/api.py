"""The REST API of teams: `/api/v1/projects` with their members, and `/api/v1/tokens`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from railyard_trainer.body import InvalidRequest, fields, parse_body
from railyard_trainer.schema import is_slug
from training import access, images
from training.api import COMMON_ERRORS, INPUT_ERROR
from training.models import ApiToken, Membership, Project, Role
from training.serializers import ErrorSerializer
from training.teams import data, services

ANY_OBJECT = {"application/json": {"type": "object"}}
FORBIDDEN = {403: COMMON_ERRORS[403]}


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="The caller's role here (an operator's: maintainer).")

    class Meta:
        model = Project
        fields = ["name", "created_at", "role", "trainer_image"]
        extra_kwargs = {"trainer_image": {"help_text": "Its runs' trainer image; empty: the installation's."}}

    def get_role(self, project: Project) -> str | None:
        return self.context["roles"].get(project.pk)


class ProjectDetailSerializer(ProjectSerializer):
    members = MemberSerializer(source="memberships", many=True, read_only=True)
    data = serializers.SerializerMethodField(help_text="What its sources may read: set by operators.")

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "members", "data"]

    @extend_schema_field(
        inline_serializer(
            "ProjectData",
            {
                "roots": serializers.ListField(child=serializers.CharField()),
                "s3_prefixes": serializers.ListField(
                    child=serializers.CharField(), help_text="None: any bucket the credentials reach."
                ),
            },
        )
    )
    def get_data(self, project: Project) -> dict:
        reach = data.of(project)
        return {"roots": [str(root) for root in reach.roots], "s3_prefixes": reach.s3_prefixes}


class TokenSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "project", "read_only", "expires_at", "last_used_at", "created_at"]


class NewTokenSerializer(TokenSerializer):
    key = serializers.SerializerMethodField(help_text="The key: shown in this answer only.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]

    def get_key(self, token: ApiToken) -> str:
        return self.context["key"]


def roles(request: Request, projects: list[Project]) -> dict[int, str]:
    """The caller's role in each project, in one query."""
    if access.caller(request).is_operator:
        return {project.pk: Role.MAINTAINER.value for project in projects}
    mine = Membership.objects.filter(user=request.user, project__in=[p.pk for p in projects])
    return dict(mine.values_list("project_id", "role"))


def _project(request: Request, name: str, role: Role = Role.VIEWER) -> Project:
    return access.get(access.projects_for(request), request, role, name=name)


def _detail(request: Request, project: Project) -> dict:
    project = Project.objects.prefetch_related("memberships__user").get(pk=project.pk)
    return ProjectDetailSerializer(project, context={"roles": roles(request, [project])}).data


class ProjectList(APIView):
    @extend_schema(responses={200: ProjectSerializer(many=True), 401: COMMON_ERRORS[401]})
    def get(self, request: Request) -> Response:
        projects = list(access.projects_for(request).order_by("name"))
        return Response(ProjectSerializer(projects, many=True, context={"roles": roles(request, projects)}).data)

    @extend_schema(
        request=ANY_OBJECT,
        responses={201: ProjectDetailSerializer, **INPUT_ERROR, 401: COMMON_ERRORS[401], **FORBIDDEN},
        description='`{"name"}`: a new project, the caller its maintainer (when they may create projects: anyone '
        "while RAILYARD_ANYONE_CREATES_PROJECTS is on, else users granted training.add_project).",
    )
    def post(self, request: Request) -> Response:
        body = fields(parse_body(request.body), ("name",), ("name",))
        if not isinstance(body["name"], str) or not is_slug(body["name"]):
            raise InvalidRequest({"name": ["Use letters, digits, '-' and '_' only (at most 100 characters)."]})
        if not access.may_create_projects(request):
            raise PermissionDenied("You may not create projects: an operator grants that (training.add_project).")
        project = access.create_project(request, body["name"])
        return Response(_detail(request, project), status=status.HTTP_201_CREATED)


class ProjectDetail(APIView):
    @extend_schema(responses={200: ProjectDetailSerializer, **COMMON_ERRORS})
    def get(self, request: Request, name: str) -> Response:
        return Response(_detail(request, _project(request, name)))


class ProjectImage(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={
            200: inline_serializer(
                "ProjectImage",
                {
                    "image": serializers.CharField(),
                    "workflows": serializers.ListField(child=serializers.CharField()),
                    "warnings": serializers.ListField(child=serializers.CharField()),
                },
            ),
            **INPUT_ERROR,
            **COMMON_ERRORS,
        },
        description='`{"image": "registry.example.com/fraud/trainer:3"}` (maintainers): register the workflows of the '
        "image — run in it as a Kubernetes Job, or in the local virtualenv RAILYARD_LOCAL_IMAGES names — and make it "
        "the project's; its requests then name its workflows and its runs use it. An empty image is the default.",
    )
    def put(self, request: Request, name: str) -> Response:
        project = _project(request, name, Role.MAINTAINER)
        _, warnings = services.set_image(request, project, parse_body(request.body))
        names = list(images.available(project.trainer_image).values_list("name", flat=True))
        return Response({"image": images.reference(project.trainer_image), "workflows": names, "warnings": warnings})


class ProjectMembers(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={
            201: OpenApiResponse(MemberSerializer, description="A new member."),
            200: OpenApiResponse(MemberSerializer, description="The member's role changed (or was that already)."),
            **INPUT_ERROR,
            **COMMON_ERRORS,
        },
        description='`{"username", "role"}`, role one of viewer, member, maintainer: add a member or change their '
        "role (maintainers only). The last maintainer keeps the role.",
    )
    def post(self, request: Request, name: str) -> Response:
        project = _project(request, name, Role.MAINTAINER)
        membership, created = services.set_member(request, project, parse_body(request.body))
        answer = MemberSerializer(membership).data
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ProjectMember(APIView):
    @extend_schema(responses={204: None, **INPUT_ERROR, **COMMON_ERRORS})
    def delete(self, request: Request, name: str, username: str) -> Response:
        project = _project(request, name, Role.MAINTAINER)
        if not services.remove_member(request, project, username):
            raise Http404(f"{username} is not a member of {project.name}.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenList(APIView):
    @extend_schema(responses={200: TokenSerializer(many=True), 401: COMMON_ERRORS[401]})
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(access.tokens_for(request), many=True).data)

    @extend_schema(
        request=ANY_OBJECT,
        responses={
            201: OpenApiResponse(NewTokenSerializer, description="The token, with its key: shown this once."),
            **INPUT_ERROR,
            401: COMMON_ERRORS[401],
            403: OpenApiResponse(ErrorSerializer, description="A limited token cannot issue tokens."),
        },
        description='`{"name", "project", "read_only", "expires_at"}`: a token for the caller, limited to one of '
        "their projects and to reading if asked, expiring at `expires_at` (ISO 8601) or never.",
    )
    def post(self, request: Request) -> Response:
        token, key = services.issue_token(request, parse_body(request.body))
        return Response(NewTokenSerializer(token, context={"key": key}).data, status=status.HTTP_201_CREATED)


class TokenDetail(APIView):
    @extend_schema(responses={204: None, **COMMON_ERRORS})
    def delete(self, request: Request, pk: int) -> Response:
        token = access.tokens_for(request).filter(pk=pk).first()
        if token is None:
            raise Http404("No such token.")
        services.revoke_token(request, token)
        return Response(status=status.HTTP_204_NO_CONTENT)
