"""The REST API of models and schedules (`/api/v1/models`, `/api/v1/schedules`): thin views over
`training.retraining.services` and `champions`."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone as clock
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from railyard_trainer.body import InvalidRequest, parse_body
from training import access
from training.api import COMMON_ERRORS, INPUT_ERROR, LIST_DEFERRED, RunPagination
from training.models import Model, Role, Run, Schedule
from training.retraining import champions, cron, services
from training.retraining.serializers import (
    FireSerializer,
    ModelDetailSerializer,
    ModelSerializer,
    PromotionSerializer,
    ScheduleSerializer,
)
from training.serializers import ErrorSerializer, RunSerializer

CONFLICT = {409: OpenApiResponse(ErrorSerializer, description="The champion cannot move as asked.")}
ANY_OBJECT = {"application/json": {"type": "object"}}


def visible_models(request: Request) -> QuerySet[Model]:
    return access.models_for(request).select_related("project", "owner", "champion")


def _model(request: Request, name: str, role: Role = Role.VIEWER) -> Model:
    """The model, if `request` may see it (else 404) and act on it as `role` (else 403)."""
    return access.get(visible_models(request), request, role, name=name)


def _schedule(request: Request, pk: int, role: Role = Role.VIEWER) -> Schedule:
    return access.get(access.schedules_for(request).select_related("model__project"), request, role, pk=pk)


def _body(request: Request, empty: object = None) -> object:
    """The JSON body; `empty` when there is none and that is allowed."""
    if empty is not None and not request.body.strip():
        return empty
    return parse_body(request.body)


class ModelPagination(RunPagination):
    noun = "models"


class ModelList(generics.ListAPIView):
    """Newest first, paged by a cursor as runs are; `project` filters."""

    serializer_class = ModelSerializer
    pagination_class = ModelPagination

    def get_queryset(self):
        latest = Run.objects.filter(model=OuterRef("pk")).order_by("-id").values("id")[:1]
        models = visible_models(self.request).prefetch_related("schedules").annotate(latest_run_id=Subquery(latest))
        if project := self.request.query_params.get("project"):
            models = models.filter(project__name=project)
        return models

    def get_serializer_context(self) -> dict:
        # Set by `get` for the page it lists (OPTIONS builds a serializer without a page).
        return {**super().get_serializer_context(), "latest_runs": getattr(self, "latest_runs", None)}

    @extend_schema(
        parameters=[OpenApiParameter("project", str)],
        responses={200: ModelSerializer(many=True), **INPUT_ERROR, 401: COMMON_ERRORS[401], 404: COMMON_ERRORS[404]},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        # Each model's latest run, read in one query for the whole page.
        ids = [model.latest_run_id for model in page if model.latest_run_id]
        self.latest_runs = {run.model_id: run for run in Run.objects.filter(pk__in=ids).select_related("model")}
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=ANY_OBJECT,
        responses={201: ModelDetailSerializer, **INPUT_ERROR, 401: COMMON_ERRORS[401], 403: COMMON_ERRORS[403]},
        description='Define a model: `{"name", "project", "request", "metric", "promotion"}`; the request '
        "template's dates may be relative (`today`, `today-90d`, `today-12w`, `today-3m`).",
    )
    def post(self, request: Request) -> Response:
        model = services.create_model(request, parse_body(request.body))
        return Response(ModelDetailSerializer(model, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ModelDetail(generics.RetrieveAPIView):
    serializer_class = ModelDetailSerializer
    lookup_field = "name"

    def get_queryset(self):
        return visible_models(self.request).prefetch_related("schedules", "promotions")

    @extend_schema(responses={200: ModelDetailSerializer, **COMMON_ERRORS})
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ANY_OBJECT,
        responses={200: ModelDetailSerializer, **INPUT_ERROR, **COMMON_ERRORS},
        description='Change `{"request", "metric", "promotion"}` (any of them): later retrains use them; earlier '
        "runs keep the template they ran with.",
    )
    def patch(self, request: Request, name: str) -> Response:
        model = services.update_model(_model(request, name, Role.MEMBER), parse_body(request.body))
        return Response(ModelDetailSerializer(model, context={"request": request}).data)


class ModelRuns(generics.ListAPIView):
    serializer_class = RunSerializer
    pagination_class = RunPagination

    def get_queryset(self):
        model = _model(self.request, self.kwargs["name"])
        return access.runs_for(self.request).with_related().filter(model=model).defer(*LIST_DEFERRED)

    @extend_schema(responses={200: RunSerializer(many=True), **COMMON_ERRORS})
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ANY_OBJECT,
        responses={201: RunSerializer, **INPUT_ERROR, **COMMON_ERRORS},
        description='Retrain now: relative dates resolve from the present moment in `{"timezone"}` (default UTC).',
    )
    def post(self, request: Request, name: str) -> Response:
        model = _model(request, name, Role.MEMBER)
        body = _body(request, empty={})
        if not isinstance(body, dict) or set(body) - {"timezone"}:
            raise InvalidRequest({"body": ['Send nothing, or {"timezone": "<IANA name>"}.']})
        tz = body.get("timezone", "UTC")
        try:
            cron.zone(tz if isinstance(tz, str) else "")
        except cron.BadSchedule as exc:
            raise InvalidRequest({"timezone": [str(exc)]}) from None
        run = services.retrain(model, request.user, clock.now(), tz, reason=f"retrain of {model.name} by hand")
        return Response(RunSerializer(run, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ModelSchedules(APIView):
    @extend_schema(responses={200: ScheduleSerializer(many=True), **COMMON_ERRORS})
    def get(self, request: Request, name: str) -> Response:
        schedules = _model(request, name).schedules.select_related("model")
        return Response(ScheduleSerializer(schedules, many=True, context={"request": request}).data)

    @extend_schema(
        request=ANY_OBJECT,
        responses={201: ScheduleSerializer, **INPUT_ERROR, **COMMON_ERRORS},
        description='`{"cron", "timezone", "concurrency": "forbid"|"replace"|"allow", "catchup": "latest"|"none", '
        '"paused"}`; only `cron` is required.',
    )
    def post(self, request: Request, name: str) -> Response:
        schedule = services.add_schedule(_model(request, name, Role.MEMBER), parse_body(request.body))
        return Response(ScheduleSerializer(schedule, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ScheduleDetail(APIView):
    @extend_schema(responses={200: ScheduleSerializer, **COMMON_ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScheduleSerializer(_schedule(request, pk), context={"request": request}).data)


class ScheduleFires(generics.ListAPIView):
    """The schedule's fires, latest scheduled time first."""

    serializer_class = FireSerializer
    pagination_class = None

    def get_queryset(self):
        return _schedule(self.request, self.kwargs["pk"]).fires.select_related("schedule")[:200]

    @extend_schema(responses={200: FireSerializer(many=True), **COMMON_ERRORS})
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class PauseSchedule(APIView):
    @extend_schema(request=None, responses={200: ScheduleSerializer, **COMMON_ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        schedule = services.pause(_schedule(request, pk, Role.MEMBER))
        return Response(ScheduleSerializer(schedule, context={"request": request}).data)


class ResumeSchedule(APIView):
    @extend_schema(
        request=None,
        responses={200: ScheduleSerializer, **COMMON_ERRORS},
        description="Fires again from the next time after now; times passed while paused are not fired.",
    )
    def post(self, request: Request, pk: int) -> Response:
        schedule = services.resume(_schedule(request, pk, Role.MEMBER))
        return Response(ScheduleSerializer(schedule, context={"request": request}).data)


class FireSchedule(APIView):
    @extend_schema(
        request=None,
        responses={201: FireSerializer, **COMMON_ERRORS},
        description="Run now, under the schedule's concurrency (a forbidden fire is recorded as skipped).",
    )
    def post(self, request: Request, pk: int) -> Response:
        record = services.fire_now(_schedule(request, pk, Role.MEMBER), request.user.get_username())
        return Response(FireSerializer(record).data, status=status.HTTP_201_CREATED)


class BackfillSchedule(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={
            201: inline_serializer(
                "Backfill",
                {
                    "backfill": serializers.IntegerField(allow_null=True),
                    "dry_run": serializers.BooleanField(),
                    "parallelism": serializers.IntegerField(),
                    "fire_times": serializers.ListField(child=serializers.DateTimeField()),
                    "already_fired": serializers.ListField(child=serializers.DateTimeField()),
                },
            ),
            **INPUT_ERROR,
            **COMMON_ERRORS,
        },
        description='`{"start", "end", "parallelism", "dry_run"}`: the schedule\'s times from start to end (dates '
        "are whole days in the schedule's timezone), at most `parallelism` running at once.",
    )
    def post(self, request: Request, pk: int) -> Response:
        schedule = _schedule(request, pk, Role.MEMBER)
        body = parse_body(request.body)
        record, times, done = services.backfill(schedule, body, request.user.get_username())
        answer = {
            "backfill": record.pk if record else None,
            "dry_run": record is None,
            "parallelism": record.parallelism if record else body.get("parallelism", 1),
            "fire_times": [moment.isoformat() for moment in times],
            "already_fired": [moment.isoformat() for moment in done],
        }
        return Response(answer, status=status.HTTP_200_OK if record is None else status.HTTP_201_CREATED)


def _run_and_reason(request: Request, model: Model) -> tuple[Run, str]:
    """The `{"run": <id>, "reason": "..."}` of a promotion or a rejection."""
    body = _body(request)
    if not isinstance(body, dict) or set(body) - {"run", "run_id", "reason"}:
        raise InvalidRequest({"body": ['Send {"run": <run id>, "reason": "..."}.']})
    run_id, reason = body.get("run", body.get("run_id")), body.get("reason", "")
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise InvalidRequest({"run": [f"Must be the id of one of the runs of {model.name}."]})
    if not isinstance(reason, str):
        raise InvalidRequest({"reason": ["Must be a string."]})
    return get_object_or_404(access.runs_for(request), pk=run_id), reason


class PromoteRun(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={200: PromotionSerializer, **INPUT_ERROR, **COMMON_ERRORS, **CONFLICT},
        description='`{"run": <id>, "reason": "..."}`: make one of the model\'s successful runs its champion.',
    )
    def post(self, request: Request, name: str) -> Response:
        model = _model(request, name, Role.MAINTAINER)
        run, reason = _run_and_reason(request, model)
        return _moved(lambda: champions.promote(model, run, request.user.get_username(), reason))


class RejectRun(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={200: PromotionSerializer, **INPUT_ERROR, **COMMON_ERRORS, **CONFLICT},
        description='`{"run": <id>, "reason": "..."}`: turn down a challenger (one awaiting approval, say); '
        "the champion stays.",
    )
    def post(self, request: Request, name: str) -> Response:
        model = _model(request, name, Role.MAINTAINER)
        run, reason = _run_and_reason(request, model)
        return _moved(lambda: champions.reject(model, run, request.user.get_username(), reason))


class RollbackModel(APIView):
    @extend_schema(
        request=ANY_OBJECT,
        responses={200: PromotionSerializer, **INPUT_ERROR, **COMMON_ERRORS, **CONFLICT},
        description='`{"reason": "..."}` (optional): restore the champion the current one replaced.',
    )
    def post(self, request: Request, name: str) -> Response:
        model = _model(request, name, Role.MAINTAINER)
        body = _body(request, empty={})
        if not isinstance(body, dict) or set(body) - {"reason"} or not isinstance(body.get("reason", ""), str):
            raise InvalidRequest({"body": ['Send nothing, or {"reason": "..."}.']})
        return _moved(lambda: champions.rollback(model, request.user.get_username(), body.get("reason", "")))


def _moved(move) -> Response:
    try:
        return Response(PromotionSerializer(move()).data)
    except champions.CannotMove as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
