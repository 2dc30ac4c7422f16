"""The REST API (`/api/v1/`): thin views over `services`, `contract` and the artifact store."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.decorators import api_view
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from railyard_trainer.storage import StoreError
from training import artifacts, contract, services
from training.conf import railyard
from training.executors import ExecutorError, get_executor
from training.models import Run, Workflow
from training.serializers import RunDetailSerializer, RunSerializer, WorkflowSerializer

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
    if isinstance(exc, contract.InvalidRequest):
        return Response(
            {"detail": "The request cannot train.", "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, contract.IdempotencyConflict):
        return Response(
            {"detail": str(exc), "errors": {contract.IDEMPOTENCY_HEADER: [str(exc)]}},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if isinstance(exc, contract.IdempotencyInFlight):
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


class RunPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def visible_runs(request: Request):
    return Run.objects.with_related()


class RunList(generics.ListAPIView):
    serializer_class = RunSerializer
    pagination_class = RunPagination

    def get_queryset(self):
        runs = visible_runs(self.request)
        params = self.request.query_params
        filters = {"status": "status", "project": "project__name", "workflow_name": "workflow__name", "user": "user"}
        for param, field in filters.items():
            if params.get(param):
                runs = runs.filter(**{field: params[param]})
        return runs

    @extend_schema(parameters=[OpenApiParameter(p, str) for p in ("status", "project", "workflow_name", "user")])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={201: RunSerializer, 200: RunSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        examples=[OpenApiExample("A fraud model", value=EXAMPLE_REQUEST, request_only=True)],
        description="Submit a training request. A repeat with the same Idempotency-Key returns the first run.",
    )
    def post(self, request: Request) -> Response:
        payload = contract.parse_body(request.body)
        key = contract.clean_idempotency_key(request.headers.get(contract.IDEMPOTENCY_HEADER))
        run, created = services.submit(request.user, payload, key)
        return Response(
            RunSerializer(run, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RunDetail(generics.RetrieveAPIView):
    serializer_class = RunDetailSerializer

    def get_queryset(self):
        return visible_runs(self.request).prefetch_related("events", "artifacts")


class RunAction(APIView):
    def run(self, request: Request, pk: int) -> Run:
        return get_object_or_404(visible_runs(request), pk=pk)


class CancelRun(RunAction):
    @extend_schema(request=None, responses={200: RunSerializer, 409: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        run = self.run(request, pk)
        if not services.cancel(run, actor=request.user.get_username()):
            run.refresh_from_db()
            return Response(
                {"detail": f"Run {run.pk} has already ended ({run.status})."}, status=status.HTTP_409_CONFLICT
            )
        return Response(RunSerializer(run, context={"request": request}).data)


class RetryRun(RunAction):
    @extend_schema(request=None, responses={201: RunSerializer})
    def post(self, request: Request, pk: int) -> Response:
        new_run = services.retry(self.run(request, pk), request.user)
        return Response(RunSerializer(new_run, context={"request": request}).data, status=status.HTTP_201_CREATED)


class RunLogs(RunAction):
    @extend_schema(parameters=[OpenApiParameter("tail", int)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        run = self.run(request, pk)
        try:
            tail = max(int(request.query_params.get("tail", 200)), 1)
        except ValueError:
            return Response({"errors": {"tail": ["Must be an integer."]}}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"run": run.pk, "status": run.status, "log": run_log(run, tail)})


def run_log(run: Run, tail: int) -> str:
    """The live log while the trainer runs, the stored one after."""
    stored = artifacts.read_text(run, "log.txt")
    if stored is not None:
        return "".join(stored.splitlines(keepends=True)[-tail:])
    if not run.job_handle:
        return ""
    try:
        return get_executor(run.executor).logs(run, tail)
    except ExecutorError as exc:
        return f"(the live log cannot be read right now: {exc})"


class RunArtifact(RunAction):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int, name: str) -> FileResponse | Response:
        run = self.run(request, pk)
        artifact = get_object_or_404(run.artifacts, name=name)
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


class WorkflowList(generics.ListAPIView):
    serializer_class = WorkflowSerializer
    pagination_class = None
    queryset = Workflow.objects.filter(is_available=True)


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def compute_resources(request: Request) -> Response:
    return Response(
        [
            {"name": name, "default": name == railyard.default_compute_resource, **profile}
            for name, profile in railyard.compute_resources.items()
        ]
    )
