"""`GET /api/v1/runs/{id}/segments`: a segmented request's table of segments, paged, sorted, searched."""

from __future__ import annotations

from django.db.models import F, QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from railyard_trainer.body import InvalidRequest
from railyard_trainer.vocabulary import RunKind, Winner
from training import access
from training.api import COMMON_ERRORS, INPUT_ERROR
from training.models import Run, Segment
from training.serializers import ErrorSerializer

#: What the table sorts by (each also descending with a leading '-').
ORDERINGS = ("segment", "train_rows", "holdout_rows", "segment_score", "generic_score", "difference", "winner")
PAGE_SIZE, MOST_PAGE_SIZE = 50, 500


def table(parent: Run, ordering: str = "segment", search: str = "", winner: str = "") -> QuerySet[Segment]:
    """The parent's segments in the given order (nulls last either way), found by part of their value."""
    descending, name = ordering.startswith("-"), ordering.removeprefix("-")
    if name not in ORDERINGS:
        known = ", ".join(ORDERINGS)
        raise InvalidRequest({"ordering": [f"Unknown ordering {ordering!r}; choose one of {known} (or -name)."]})
    if winner and winner not in [w.value for w in Winner]:
        raise InvalidRequest({"winner": [f"Unknown winner {winner!r}; choose segment or generic."]})
    rows = Segment.objects.filter(parent=parent)
    if search:
        rows = rows.filter(name__icontains=search)
    if winner:
        rows = rows.filter(winner=winner)
    field = F("name" if name == "segment" else name)
    return rows.order_by(field.desc(nulls_last=True) if descending else field.asc(nulls_last=True), "name")


def _whole(request: Request, name: str, default: int, most: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise InvalidRequest({name: [f"Must be a whole number from 1 to {most}."]})
    return int(raw)


ITEM = inline_serializer(
    "SegmentItem",
    {
        "segment": serializers.JSONField(help_text="The value of the segment column."),
        "run": serializers.IntegerField(allow_null=True, help_text="Its model's run; null when too small to train."),
        "train_rows": serializers.IntegerField(),
        "holdout_rows": serializers.IntegerField(),
        "metric": serializers.CharField(),
        "segment_score": serializers.FloatField(allow_null=True),
        "generic_score": serializers.FloatField(allow_null=True),
        "difference": serializers.FloatField(allow_null=True, help_text="Segment minus generic, better-positive."),
        "interval": serializers.JSONField(allow_null=True, help_text="{low, high, confidence} of the difference."),
        "winner": serializers.ChoiceField([w.value for w in Winner]),
    },
)


class RunSegments(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ordering", str, description=f"One of {', '.join(ORDERINGS)}; '-' before it: descending."),
            OpenApiParameter("search", str, description="Segments whose value contains this (any case)."),
            OpenApiParameter("winner", str, enum=[w.value for w in Winner]),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description=f"At most {MOST_PAGE_SIZE} (default {PAGE_SIZE})."),
        ],
        responses={
            200: inline_serializer(
                "SegmentPage",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": ITEM.__class__(many=True),
                },
            ),
            **INPUT_ERROR,
            401: COMMON_ERRORS[401],
            404: OpenApiResponse(ErrorSerializer, description="No such segmented request that you may see."),
        },
        description="A segmented request's segments: each one's rows, both models' scores on its holdout "
        "rows, their difference with its interval, and the winner.",
    )
    def get(self, request: Request, pk: int) -> Response:
        parent = access.runs_for(request).filter(pk=pk, kind=RunKind.SEGMENTED).first()
        if parent is None:
            raise NotFound(f"Run {pk} is not a segmented request you may see.")
        params = request.query_params
        rows = table(
            parent, params.get("ordering", "segment"), params.get("search", "").strip(), params.get("winner", "")
        )
        page, size = _whole(request, "page", 1, 10**6), _whole(request, "page_size", PAGE_SIZE, MOST_PAGE_SIZE)
        count = rows.count()
        items = [segment.item() for segment in rows[(page - 1) * size : page * size]]
        url = request.build_absolute_uri()
        return Response(
            {
                "count": count,
                "next": replace_query_param(url, "page", page + 1) if page * size < count else None,
                "previous": replace_query_param(url, "page", page - 1) if page > 1 else None,
                "results": items,
            }
        )
