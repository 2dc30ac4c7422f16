"""The REST API (`/api/v1/`): thin views over `services` and the artifact store."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.defaults import page_not_found
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from railyard_trainer.body import InvalidRequest, parse_body
from railyard_trainer.storage import StoreError
from railyard_trainer.vocabulary import RunStatus
from training import access, artifacts, images, logs, services, webhooks
from training.conf import railyard
from training.models import Role, Run, RunQuerySet, Webhook
from training.openapi import run_request_schema
from training.segments import services as segments
from training.serializers import (
    ComputeResourceSerializer,
    DeliverySerializer,
    ErrorSerializer,
    RunDetailSerializer,
    RunSerializer,
    WebhookSerializer,
    WorkflowSerializer,
)

#: The longest log tail the API returns at once.
MAX_LOG_LINES = 100_000
MAX_ATTEMPT = 10_000
#: Page numbers past this are refused (a page past the last one is a 404).
MAX_PAGE = 10**9
MAX_CURSOR = 2**63 - 1
#: What the run list leaves out of its query: the JSON a list never shows (a run's request and spec
#: are kilobytes each), so that paging reads narrow rows.
LIST_DEFERRED = ("request", "spec", "template", "metrics", "data_summary", "model__request", "model__promotion")

EXAMPLE_REQUEST = {
    "user": "ada",
    "project": "fraud",
    "model_description": "weekly card-fraud retrain",
    "compute_resource": "cpu",
    "data": {
        "features": [
            {
                "names": ["created_at", "amount", "country", "is_fraud"],
                "source": "file",
                "format": "parquet",
                "path": "charges.parquet",
                "date_column": "created_at",
            }
        ],
        "date_range": {"start": "2026-01-01", "end": "2026-10-01"},
        "filters": [{"feature_name": "amount", "predicate": "GtEq", "feature_value": 1}],
        "holdout_sampling": {
            "sampling_function": "DATE_RANGE",
            "date_range": {"start": "2026-09-01", "end": "2026-10-01"},
        },
    },
    "train": {
        "workflow_name": "gradient_boosting",
        "classifier_features": ["amount", "country"],
        "label": "is_fraud",
        "custom_params": {"max_iter": 200},
    },
}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, InvalidRequest):
        return Response(
            {"detail": "The request cannot train.", "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, services.IdempotencyConflict):
        return Response(
            {"detail": str(exc), "errors": {services.IDEMPOTENCY_HEADER: [str(exc)]}},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if isinstance(exc, services.IdempotencyInFlight):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {
                "detail": "The request body is too large.",
                "errors": {"body": ["The body is larger than the server accepts (RAILYARD_MAX_REQUEST_BYTES)."]},
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(exc, context)


class RunPagination(BasePagination):
    """Newest first, by a cursor: `next` carries the last id seen, so no page counts or skips rows.

    `page` (and `previous`) still work for older clients: the page's ids are found by an index-only
    scan and only those rows are read. Neither way counts the table.
    """

    page_size = 50
    max_page_size = 500
    #: What the pages hold, for the words of a refusal.
    noun = "runs"

    def paginate_queryset(self, queryset: RunQuerySet, request: Request, view: APIView | None = None) -> list[Run]:
        self.request = request
        params = request.query_params
        size = self.page_size
        if "page_size" in params:
            size = whole_number(params["page_size"], "page_size", self.max_page_size)
        queryset = queryset.order_by("-id")
        if "page" in params:
            self.page = whole_number(params["page"], "page", MAX_PAGE)
            offset = (self.page - 1) * size
            ids = list(queryset.values_list("id", flat=True)[offset : offset + size + 1])
            if not ids and self.page > 1:
                raise NotFound(f"Invalid page: there are not that many {self.noun}.")
            rows = list(queryset.filter(id__in=ids[:size]))
        else:
            self.page = None
            if "cursor" in params:
                queryset = queryset.filter(id__lt=whole_number(params["cursor"], "cursor", MAX_CURSOR))
            rows = list(queryset[: size + 1])
            ids = [row.pk for row in rows]
        self.more = len(ids) > size
        return rows[:size]

    def get_paginated_response(self, data: list) -> Response:
        return Response({"next": self._next(data), "previous": self._previous(), "results": data})

    def _next(self, data: list) -> str | None:
        if not self.more:
            return None
        url = self.request.build_absolute_uri()
        if self.page is not None:
            return replace_query_param(url, "page", self.page + 1)
        return replace_query_param(url, "cursor", data[-1]["id"])

    def _previous(self) -> str | None:
        if not self.page or self.page == 1:
            return None
        return replace_query_param(self.request.build_absolute_uri(), "page", self.page - 1)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view: APIView) -> list[dict]:
        def whole(name: str, maximum: int, description: str) -> dict:
            schema = {"type": "integer", "minimum": 1, "maximum": maximum}
            return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

        return [
            whole("cursor", MAX_CURSOR, "Where the page starts: the `next` link carries it (the last id seen)."),
            whole("page", MAX_PAGE, "A page number, for clients that page by number (no total is counted)."),
            whole("page_size", self.max_page_size, f"{self.noun.capitalize()} per page (50 unless said)."),
        ]


def whole_number(raw: str, name: str, maximum: int) -> int:
    """A query parameter that must be a whole number from 1 to `maximum`; a 400 naming it otherwise."""
    # ASCII digits only: str.isdigit() also accepts '³', which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise InvalidRequest({name: [f"Must be a whole number from 1 to {maximum}."]})
    return int(raw)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 for URLs no route matches: JSON under /api/, the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)


#: What every route may answer besides its success.
COMMON_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No valid token or session."),
    403: OpenApiResponse(ErrorSerializer, description="The caller's role or token may not do this; it says why."),
    404: OpenApiResponse(ErrorSerializer, description="No such run (or artifact), or none the caller may see."),
}
INPUT_ERROR = {400: OpenApiResponse(ErrorSerializer, description="The input is refused; `errors` names each field.")}


def visible_runs(request: Request) -> RunQuerySet:
    return access.runs_for(request).with_related()


class RunList(generics.ListAPIView):
    serializer_class = RunSerializer
    pagination_class = RunPagination

    def get_queryset(self):
        runs = visible_runs(self.request).defer(*LIST_DEFERRED)
        params = self.request.query_params
        if "status" in params and params["status"] not in [status.value for status in RunStatus]:
            known = ", ".join([status.value for status in RunStatus])
            raise InvalidRequest({"status": [f"Unknown status {params['status']!r}; choose one of {known}."]})
        filters = {"status": "status", "project": "project__name", "workflow_name": "workflow__name", "user": "user"}
        for param, field in filters.items():
            if params.get(param):
                runs = runs.filter(**{field: params[param]})
        # A segmented request's children are listed under it (`parent`), not among everyone's runs.
        if params.get("parent"):
            runs = runs.filter(parent_id=whole_number(params["parent"], "parent", MAX_CURSOR))
        else:
            runs = runs.filter(parent__isnull=True)
        if query := params.get("q", "").strip():
            runs = runs.filter(model_description__icontains=query)  # a trigram index serves it on PostgreSQL
        return runs

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[status.value for status in RunStatus]),
            *(OpenApiParameter(p, str) for p in ("project", "workflow_name", "user")),
            OpenApiParameter("q", str, description="Runs whose description contains this (any case)."),
            OpenApiParameter(
                "parent", int, description="The runs of this segmented request (else only runs of no request's)."
            ),
        ],
        responses={200: RunSerializer(many=True), **INPUT_ERROR, 401: COMMON_ERRORS[401], 404: COMMON_ERRORS[404]},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"application/json": run_request_schema()},
        responses={
            201: OpenApiResponse(RunSerializer, description="A new run was queued."),
            200: OpenApiResponse(RunSerializer, description="A repeat of an earlier request: its run."),
            **INPUT_ERROR,
            401: COMMON_ERRORS[401],
            403: OpenApiResponse(ErrorSerializer, description="The caller may not launch in the request's project."),
            409: OpenApiResponse(ErrorSerializer, description="The first request with this key is still in flight."),
            422: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used with another request."),
        },
        parameters=[
            OpenApiParameter(
                services.IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description=f"At most {services.MAX_IDEMPOTENCY_KEY} characters; remembered for 24 hours "
                "(RAILYARD_IDEMPOTENCY_KEY_TTL_HOURS).",
            )
        ],
        examples=[OpenApiExample("A fraud model", value=EXAMPLE_REQUEST, request_only=True)],
        description="Submit a training request. A repeat with the same Idempotency-Key returns the first run.",
    )
    def post(self, request: Request) -> Response:
        payload = parse_body(request.body)
        key = services.clean_idempotency_key(request.headers.get(services.IDEMPOTENCY_HEADER))
        run, created = services.submit(request, payload, key)
        return Response(
            RunSerializer(run, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema(responses={200: RunDetailSerializer, **COMMON_ERRORS})
class RunDetail(generics.RetrieveAPIView):
    serializer_class = RunDetailSerializer

    def get_queryset(self):
        return visible_runs(self.request).with_history()


class RunAction(APIView):
    def run(self, request: Request, pk: int, role: Role = Role.VIEWER) -> Run:
        """The run, if `request` may see it (else 404) and act on it as `role` (else 403)."""
        return access.get(visible_runs(request), request, role, pk=pk)


class CancelRun(RunAction):
    @extend_schema(
        request=None,
        responses={
            200: RunSerializer,
            **COMMON_ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="The run has already ended."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        run = self.run(request, pk, Role.MEMBER)
        if not services.cancel(run, actor=request.user.get_username()):
            run.refresh_from_db()
            return Response(
                {"detail": f"Run {run.pk} has already ended ({run.status})."}, status=status.HTTP_409_CONFLICT
            )
        return Response(RunSerializer(run, context={"request": request}).data)


class RetryRun(RunAction):
    @extend_schema(
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "failed_only": {
                        "type": "boolean",
                        "description": "A failed segmented request: retrain only its failed children, in place.",
                    }
                },
                "additionalProperties": False,
            }
        },
        responses={
            201: OpenApiResponse(RunSerializer, description="A new run of the same request was queued."),
            200: OpenApiResponse(RunSerializer, description="failed_only: the request runs again (same run)."),
            **COMMON_ERRORS,
            400: OpenApiResponse(ErrorSerializer, description="The run's request no longer validates."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        run = self.run(request, pk, Role.MEMBER)
        body = parse_body(request.body) if request.body.strip() else {}
        if not isinstance(body, dict) or set(body) - {"failed_only"}:
            raise InvalidRequest({"body": ['Send nothing, or {"failed_only": true}.']})
        failed_only = body.get("failed_only", False)
        if not isinstance(failed_only, bool):
            raise InvalidRequest({"failed_only": ["Must be true or false."]})
        if run.parent_id:
            detail = f"Run {run.pk} is part of run {run.parent_id}: retry that one with failed_only."
            return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)
        context = {"request": request}
        if failed_only:
            try:
                run = segments.retry_failed(run, request.user.get_username())
            except segments.CannotRetry as exc:
                return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
            return Response(RunSerializer(run, context=context).data)
        new_run = services.retry(run, request)
        return Response(RunSerializer(new_run, context=context).data, status=status.HTTP_201_CREATED)


class RunLogs(RunAction):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "tail",
                {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES},
                description=f"How many of the last lines (default 200, at most {MAX_LOG_LINES}).",
            )
        ],
        responses={
            200: inline_serializer(
                "RunLog",
                {"run": serializers.IntegerField(), "status": serializers.CharField(), "log": serializers.CharField()},
            ),
            **INPUT_ERROR,
            **COMMON_ERRORS,
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        run = self.run(request, pk)
        tail = whole_number(request.query_params.get("tail", "200"), "tail", MAX_LOG_LINES)
        return Response({"run": run.pk, "status": run.status, "log": logs.run_log(run, tail)})


class RunArtifact(RunAction):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "attempt",
                int,
                description="Which attempt's artifact (default: the current attempt's).",
            )
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            **INPUT_ERROR,
            **COMMON_ERRORS,
            503: OpenApiResponse(ErrorSerializer, description="The artifact store cannot serve it right now."),
        },
    )
    def get(self, request: Request, pk: int, name: str) -> FileResponse | Response:
        run = self.run(request, pk)
        attempt = whole_number(request.query_params.get("attempt", str(run.attempt)), "attempt", MAX_ATTEMPT)
        artifact = get_object_or_404(run.artifacts, name=name, attempt=attempt)
        try:
            stream = artifacts.open_stream(artifact)
        except FileNotFoundError:
            raise Http404(f"{name} is recorded but missing from the artifact store") from None
        except StoreError as exc:
            return Response(
                {"detail": f"The artifact store cannot serve it right now: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return FileResponse(stream, as_attachment=True, filename=name, content_type=artifact.content_type)


@extend_schema(
    parameters=[OpenApiParameter("project", str, description="The workflows a request in this project may name.")],
    responses={200: WorkflowSerializer(many=True), 401: COMMON_ERRORS[401], 404: COMMON_ERRORS[404]},
)
class WorkflowList(generics.ListAPIView):
    """The workflows one may launch: the installation's trainer's and those of one's projects' images."""

    serializer_class = WorkflowSerializer
    pagination_class = None

    def get_queryset(self):
        workflows = access.workflows_for(self.request).filter(is_available=True)
        if named := self.request.query_params.get("project"):
            project = access.get(access.projects_for(self.request), self.request, name=named)
            workflows = workflows.filter(image=images.image_of(project))
        return workflows


@extend_schema(responses={200: ComputeResourceSerializer(many=True), 401: COMMON_ERRORS[401]})
@api_view(["GET"])
def compute_resources(request: Request) -> Response:
    return Response(
        [
            {"name": name, "default": name == railyard.default_compute_resource, **profile}
            for name, profile in railyard.compute_resources.items()
        ]
    )


def visible_webhooks(request: Request):
    return access.webhooks_for(request).select_related("project")


class WebhookList(APIView):
    @extend_schema(responses={200: WebhookSerializer(many=True), 401: COMMON_ERRORS[401]})
    def get(self, request: Request) -> Response:
        return Response(WebhookSerializer(visible_webhooks(request), many=True).data)

    @extend_schema(
        request={"application/json": {"type": "object"}},
        responses={201: WebhookSerializer, **INPUT_ERROR, 401: COMMON_ERRORS[401], 403: COMMON_ERRORS[403]},
        description='`{"project", "url", "events", "secret", "failing_after"}`: events are '
        + ", ".join(webhooks.EVENTS)
        + f"; each delivery is signed in the {webhooks.SIGNATURE_HEADER} header (t=<unix seconds>,v1=<hex "
        'HMAC-SHA256 of "<t>.<raw body>">). Without a secret one is made and shown in this answer only.',
    )
    def post(self, request: Request) -> Response:
        hook = webhooks.create(request, parse_body(request.body))
        answer = WebhookSerializer(hook, context={"reveal_secret": True}).data
        return Response(answer, status=status.HTTP_201_CREATED)


class WebhookDetail(APIView):
    @extend_schema(responses={204: None, **COMMON_ERRORS})
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(visible_webhooks(request), pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveries(APIView):
    @extend_schema(responses={200: DeliverySerializer(many=True), **COMMON_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        hook: Webhook = get_object_or_404(visible_webhooks(request), pk=pk)
        return Response(DeliverySerializer(webhooks.recent(hook), many=True).data)
